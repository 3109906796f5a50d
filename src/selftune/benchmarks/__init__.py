"""Benchmark suite for comparing samplers: problems, optimiser adapters, a runner and scoring.

Importable without any peer library installed: ``cocoex``, scikit-learn, Optuna, HEBO, SMAC3 and Nevergrad
are imported only when a problem or adapter that needs them is used. The command line lives in
``benchmarks/compare_samplers.py`` at the repository root.

>>> from selftune.benchmarks import get_problem, run
>>> import selftune
>>> problem = get_problem("branin")
>>> trace = run(problem, "selftune-random", seed=0, budget=5)
>>> len(trace)
5
"""

from __future__ import annotations

from selftune.benchmarks.problems import (
    GROUPS,
    BBOBProblem,
    FunctionProblem,
    MixintProblem,
    NoisyBBOBProblem,
    Problem,
    all_problems,
    get_problem,
    problems_in,
)
from selftune.benchmarks.runner import (
    OPTIMIZERS,
    Optimizer,
    RunResult,
    SelftuneOptimizer,
    available_optimizers,
    make_optimizer,
    measure_latency,
    run,
    run_detailed,
)
from selftune.benchmarks.scoring import (
    best_so_far,
    log10_regret,
    mean_ranks,
    normalised_score,
    score_table,
    wins_losses,
)
from selftune.benchmarks.sklearn_problems import SklearnProblem

__all__ = [
    "GROUPS",
    "Problem",
    "BBOBProblem",
    "MixintProblem",
    "NoisyBBOBProblem",
    "SklearnProblem",
    "FunctionProblem",
    "all_problems",
    "get_problem",
    "problems_in",
    "Optimizer",
    "SelftuneOptimizer",
    "RunResult",
    "OPTIMIZERS",
    "available_optimizers",
    "make_optimizer",
    "run",
    "run_detailed",
    "measure_latency",
    "best_so_far",
    "normalised_score",
    "log10_regret",
    "mean_ranks",
    "wins_losses",
    "score_table",
]
