"""A worker process that dies (os._exit, like SIGKILL) in the middle of its first exploit.

``stage``: after the source's checkpoint is copied into the staged directory, before the storage records
the exploit. ``commit``: after the storage recorded it, before the copy is renamed into place.
"""

from __future__ import annotations

import os
import sys

import pbt_toy

import selftune
from selftune.storage.artifacts import ArtifactStore

if __name__ == "__main__":
    url, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    stage, commit = ArtifactStore.stage_copy, ArtifactStore.commit_copy

    def dying_stage(self, *a, **kw):  # type: ignore[no-untyped-def]
        out = stage(self, *a, **kw)
        if mode == "stage":
            os._exit(9)
        return out

    def dying_commit(self, *a, **kw):  # type: ignore[no-untyped-def]
        if mode == "commit":
            os._exit(9)
        return commit(self, *a, **kw)

    ArtifactStore.stage_copy = dying_stage  # type: ignore[method-assign]
    ArtifactStore.commit_copy = dying_commit  # type: ignore[method-assign]
    study = selftune.load_study(name, storage=url, scheduler=pbt_toy.pbt(), sampler=selftune.RandomSampler(seed=0))
    study.optimize(pbt_toy.objective, trials=8, progress=False)
    sys.exit(0)  # not reached: the first exploit kills this process
