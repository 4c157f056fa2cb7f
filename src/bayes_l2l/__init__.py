"""bayes-l2l: Bayesian loss-to-loss scaling laws for LLM checkpoints."""

from bayes_l2l.errors import DiagnosticsError, LossTableError, UserInputError
from bayes_l2l.table import NAMED_AVERAGES, LossTable, read_table

__version__ = "0.1.0"
__all__ = [
    "NAMED_AVERAGES",
    "DiagnosticsError",
    "LossTable",
    "LossTableError",
    "UserInputError",
    "read_table",
    "__version__",
]
