"""bayes-l2l: Bayesian loss-to-loss scaling laws for LLM checkpoints.

The Python API (``import bayes_l2l as bl``; docs/api.md): :func:`import_table`, :func:`read_table`,
:func:`fit`, :func:`load`, :func:`baseline`, :func:`design_of`, :func:`survey`, and the result classes :class:`Fit`,
:class:`Evidence`, :class:`Predictions`, :class:`TestResult`, :class:`Baselines`. They are loaded on first
use, so that ``import bayes_l2l`` (and the CLI's start) stays free of jax.
"""

from typing import Any

from bayes_l2l.errors import DiagnosticsError, LossTableError, UserInputError
from bayes_l2l.table import NAMED_AVERAGES, LossTable, read_table

__version__ = "0.1.0"
_API = (
    "import_table",
    "fit",
    "load",
    "baseline",
    "design_of",
    "survey",
    "Fit",
    "Evidence",
    "Predictions",
    "TestResult",
    "Baselines",
)
__all__ = [
    "NAMED_AVERAGES",
    "DiagnosticsError",
    "LossTable",
    "LossTableError",
    "UserInputError",
    "read_table",
    "__version__",
    *_API,
]


def __getattr__(name: str) -> Any:
    if name in _API:
        from bayes_l2l import api

        return getattr(api, name)
    raise AttributeError(f"module 'bayes_l2l' has no attribute {name!r}")
