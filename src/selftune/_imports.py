"""Optional dependencies, imported only when used; a missing one names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from selftune.exceptions import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'selftune[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this feature needs {module!r}, which is not installed ({exc}); "
            f"install it with: pip install 'selftune[{extra}]'"
        ) from None
