"""Analysis of finished and running studies: parameter importances and Plotly figures.

>>> from selftune.analysis import importance, plot_history  # doctest: +SKIP
>>> importance(study)                   # {"lr": 0.81, "layers": 0.15, ...}, fANOVA, sums to 1
>>> plot_history(study).show()          # needs plotly: pip install 'selftune[dashboard]'

Nothing here imports scikit-learn (fANOVA's forest, ``selftune[examples]``) or Plotly until a function
that needs it is called.
"""

from __future__ import annotations

from selftune.analysis.importance import METHODS, fanova_importance, importance, ped_anova_importance
from selftune.analysis.plots import (
    plot_contour,
    plot_history,
    plot_importance,
    plot_intermediate,
    plot_parallel_coordinates,
    plot_slice,
    plot_timeline,
)

__all__ = [
    "importance",
    "fanova_importance",
    "ped_anova_importance",
    "METHODS",
    "plot_history",
    "plot_parallel_coordinates",
    "plot_slice",
    "plot_contour",
    "plot_importance",
    "plot_intermediate",
    "plot_timeline",
]
