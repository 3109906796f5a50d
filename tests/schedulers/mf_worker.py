"""A worker process for the multi-worker scheduler test: joins a study and runs synthetic curves with ASHA."""

from __future__ import annotations

import sys
import time

import selftune
from selftune.benchmarks.curves import SyntheticCurves
from selftune.schedulers import ASHAScheduler, SuccessiveHalvingScheduler

if __name__ == "__main__":
    url, name, trials, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    problem = SyntheticCurves(max_steps=27)
    kind = sys.argv[5] if len(sys.argv) > 5 else "asha"
    if kind == "asha":
        scheduler = ASHAScheduler(max_resource=27)
    elif kind == "asha-promotion":
        scheduler = ASHAScheduler(max_resource=27, variant="promotion")
    else:
        scheduler = SuccessiveHalvingScheduler(max_resource=27)
    study = selftune.load_study(name, storage=url, sampler=selftune.TPESampler(), scheduler=scheduler)
    time.sleep(max(0.0, start_at - time.time()))  # start together, so both workers share the study
    study.optimize(problem.objective(seed=0), trials=trials, progress=False)
    study.close()
