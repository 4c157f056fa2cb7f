"""The Python API: ``import bayes_l2l as bl``. Every CLI command is a thin shell over these functions.

>>> table = bl.import_table("latest_pm_hf.csv", format="llm-line")
>>> post = bl.fit(table, x="val/fineweb_edu", y="val/c4", factors=["pretraining_data"],
...               where={"architecture": "Llama"})
>>> ev = post.compare("pretraining_data"); ev.to_dataframe()

Results render as tables in Jupyter (``_repr_html_``) and convert with ``to_dataframe()`` / ``to_dict()``
(``to_dict()`` is what the CLI prints with ``--json``). Bad input raises
:class:`~bayes_l2l.errors.UserInputError`, a failed sampler is reported in ``diagnostics`` (and raised as
:class:`~bayes_l2l.errors.DiagnosticsError` only by :meth:`Fit.raise_for_diagnostics`); nothing here prints:
progress goes to a ``progress=`` callable (e.g. ``progress=print``). Losses are in the question's units:
x's and y's each as the table stores them (``x_unit=`` / ``y_unit=`` pick one where it has several);
gaps, ROPEs and intervals are in y's unit.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_l2l import comparisons
from bayes_l2l.errors import DiagnosticsError, UserInputError
from bayes_l2l.table import LossTable, read_table
from bayes_l2l.where import normalise_where

Progress = Callable[[str], None] | None
QUESTION_OPTIONS = (
    "unit",
    "x_unit",
    "y_unit",
    "convert_units",
    "allow_mixed",
    "max_x",
    "min_fraction",
    "early_fraction",
    "early_weight",
)
"""Keywords of :func:`fit` that shape the question (the rest are model and sampler options)."""


def _html_table(title: str, frame: pd.DataFrame, lines: Sequence[str] = ()) -> str:
    notes = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return f"<div><b>{html.escape(title)}</b>{notes}{frame.to_html(index=False, float_format=_fmt)}</div>"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _table(table: LossTable | str | Path) -> LossTable:
    return table if isinstance(table, LossTable) else read_table(table)


def _factors(factors: str | Sequence[str] | None) -> list[str]:
    if factors is None:
        return []
    return [factors] if isinstance(factors, str) else list(factors)


# ------------------------------------------------------------------------------------------ tables
def import_table(
    paths: str | Path | Sequence[str | Path],
    format: str = "generic",  # noqa: A002 - the CLI's --format
    mapping: str | Path | None = None,
    *,
    factors: Mapping[str, str] | None = None,
    **options: Any,
) -> LossTable:
    """Read loss files of a known ``format`` (llm-line, lm-eval, gadre, gemstones, generic + ``mapping``
    YAML, ...) into one validated LossTable; ``factors`` adds constant labels to every row; ``options`` are
    the format's reader options (as ``bayes-l2l import`` takes them)."""
    from bayes_l2l.io import import_table as _import

    if isinstance(paths, str | Path):
        paths = [paths]
    return _import(format, list(paths), mapping, factors=dict(factors) if factors else None, **options)


# ------------------------------------------------------------------------------------------ results
@dataclass
class Evidence:
    """The contrasts of one or more factors: curve gaps with 90% HDIs, P(shift), decisions, and the
    leave-one-run-out comparison against one shared curve (where it is available)."""

    fit: Fit
    contrasts: dict[str, list[Any]]
    """factor -> :class:`~bayes_l2l.evidence.ContrastResult` per level."""
    rope: float
    shared_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """The posterior's diagnostic problems (the decisions rest on it; empty when it passed)."""
        return comparisons.fit_problems(self.fit.posterior, self.shared_info)[0]

    @property
    def warnings(self) -> list[str]:
        """Problems of the auxiliary shared-curve fits (they only make the elpd unreliable)."""
        return comparisons.fit_problems(self.fit.posterior, self.shared_info)[1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``bayes-l2l compare --json``."""
        return comparisons.evidence_payload(self.fit.posterior, self.contrasts, self.rope, self.shared_info)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per contrast: factor, level, base, support, gap mean and 90% HDI, max |gap|, P(shift),
        decision, elpd difference (level curves minus one shared curve) and notes."""
        rows = []
        for factor, contrasts in self.contrasts.items():
            for c in contrasts:
                rows.append(
                    {
                        "factor": factor,
                        "level": c.level,
                        "base": c.base,
                        "x_lo": c.support[0],
                        "x_hi": c.support[1],
                        "gap_mean": c.gap_mean,
                        "gap_lo90": c.gap_hdi90[0],
                        "gap_hi90": c.gap_hdi90[1],
                        "max_abs_gap": c.gap_maxabs,
                        "max_abs_gap_lo90": c.gap_maxabs_hdi90[0],
                        "max_abs_gap_hi90": c.gap_maxabs_hdi90[1],
                        "p_shift": c.p_shift,
                        "p_equivalent": c.p_equivalent,
                        "decision": c.decision,
                        "elpd_diff": c.elpd_diff,
                        "elpd_se": c.elpd_se,
                        "matched_on": ", ".join(f"{k}={v}" for k, v in c.matched_on.items()),
                        "note": "; ".join(n for n in (c.note, c.elpd_note) if n),
                    }
                )
        return pd.DataFrame(rows)

    def ranking(self) -> pd.DataFrame:
        """The factors ranked by their largest gap (several factors compared)."""
        from bayes_l2l.evidence import rank_factors

        return rank_factors(self.contrasts)

    def plot(self) -> Any:
        """A matplotlib Figure: each contrast's mean gap and max |gap| with 90% HDIs against the ROPE."""
        from bayes_l2l.plots import plot_gap_forest

        return plot_gap_forest(self.contrasts, self.rope)

    def _repr_html_(self) -> str:
        q = self.fit.design.question
        lines = [f"{q.y} vs {q.x} ({q.units_label()}); ROPE {self.rope:g}", self.fit._diagnostics_line()]
        cols = ["factor", "level", "base", "gap_mean", "gap_lo90", "gap_hi90", "p_shift", "decision"]
        return _html_table("evidence", self.to_dataframe()[cols], lines)


@dataclass
class Predictions:
    """Predicted y with 50% and 90% predictive intervals, and extrapolation flags."""

    frame: pd.DataFrame
    x_metric: str
    y_metric: str
    unit: str
    diagnostics: dict[str, Any]

    def to_dataframe(self) -> pd.DataFrame:
        return self.frame.copy()

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``bayes-l2l predict --json``."""
        return {
            "x_metric": self.x_metric,
            "y_metric": self.y_metric,
            "unit": self.unit,
            "predictions": self.frame.to_dict(orient="records"),
            "diagnostics": self.diagnostics,
        }

    def _repr_html_(self) -> str:
        return _html_table(f"predicted {self.y_metric} ({self.unit}) from {self.x_metric}", self.frame)


@dataclass
class TestResult:
    """Do new checkpoints lie on a fitted curve? Gap with 90% HDI, P(shift), decision, per-checkpoint z."""

    result: dict[str, Any]

    __test__ = False  # not a pytest test class

    @property
    def decision(self) -> str:
        return str(self.result["decision"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``bayes-l2l test --json``."""
        return dict(self.result)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per new checkpoint: x, y, predicted, predictive sd, z."""
        return pd.DataFrame(self.result["checkpoints"])

    def _repr_html_(self) -> str:
        r = self.result
        line = (
            f"{r['n_checkpoints']} checkpoint(s) vs {r['against']}: mean gap {r['gap_mean']:+.4f}, 90% HDI "
            f"[{r['gap_hdi90'][0]:+.4f}, {r['gap_hdi90'][1]:+.4f}], P(shift) {r['p_shift']:.2f} -> {r['decision']}"
        )
        return _html_table("test against a curve", self.to_dataframe(), [line])


@dataclass
class Baselines:
    """Point fits per group (the paper's two-stage fit, a free 4-parameter fit, ...), for comparison."""

    groups: list[Any]
    """:class:`~bayes_l2l.point_fits.GroupFit` per level of ``by``."""
    methods: tuple[str, ...]
    meta: dict[str, Any]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per group: n, runs, status, and per method its parameters, SSE, RMSE, condition number."""
        from bayes_l2l.point_fits import groups_frame

        return groups_frame(self.groups, self.methods)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``bayes-l2l baseline --json``."""
        return {**self.meta, "groups": [g.to_dict() for g in self.groups]}

    def _repr_html_(self) -> str:
        return _html_table("baseline fits", self.to_dataframe())


def baseline(
    table: LossTable | str | Path,
    x: str,
    y: str,
    by: str | None = None,
    *,
    where: Mapping[str, str] | None = None,
    method: str = "both",
    unit: str | None = None,
    allow_mixed: bool = False,
    n_starts: int = 24,
    seed: int = 0,
) -> Baselines:
    """Point-fit comparators of y against x per level of ``by`` (``method``: free, two_stage, power_law,
    linear, both = free + two_stage, all)."""
    from bayes_l2l.point_fits import METHOD_SETS, fit_baseline_groups

    if method not in METHOD_SETS:
        raise UserInputError(f"--method {method!r}: use one of {', '.join(METHOD_SETS)}")
    if n_starts < 1:
        raise UserInputError("--n-starts must be at least 1")
    t = _table(table)
    source = t.source
    if where:
        t = t.where(**where)
    groups = fit_baseline_groups(
        t, x, y, by, method, unit=unit, allow_mixed=allow_mixed, n_starts=n_starts, seed=seed
    )
    meta = {
        "table": source,
        "x": x,
        "y": y,
        "by": by,
        "where": normalise_where(where),
        "method": method,
        "warnings": list(t.warnings),
    }
    return Baselines(groups, METHOD_SETS[method], meta)


# ------------------------------------------------------------------------------------------ the fit
class Fit:
    """A fitted loss-to-loss model: the posterior of one question, with what can be asked of it."""

    def __init__(self, posterior: Any, folder: str | Path | None = None) -> None:
        self.posterior = posterior
        """The library's :class:`~bayes_l2l.infer.Posterior` (DataTree, design, settings, diagnostics)."""
        self.folder = None if folder is None else Path(folder)
        """Where it is saved (the shared-curve fits of :meth:`compare` are cached there), or None."""

    # ------------------------------------------------------------------ what it holds
    @property
    def design(self) -> Any:
        return self.posterior.design

    @property
    def question(self) -> Any:
        return self.posterior.design.question

    @property
    def datatree(self) -> Any:
        """The ArviZ DataTree (posterior, sample_stats, log_likelihood, prior, observed_data, ...)."""
        return self.posterior.dt

    @property
    def diagnostics(self) -> dict[str, Any]:
        """ok, problems, max R-hat, min bulk / tail ESS, divergences, BFMI, tree-depth saturation, attempts."""
        return self.posterior.diagnostics

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """Every sampler attempt: settings, wall seconds, diagnostics (the kept one is ``settings['kept_attempt']``)."""
        return list(self.posterior.settings.get("attempts", []))

    @property
    def ok(self) -> bool:
        return bool(self.posterior.diagnostics.get("ok"))

    def raise_for_diagnostics(self) -> None:
        """Raise :class:`DiagnosticsError` when every sampler attempt failed (the CLI's exit 3)."""
        dg = self.diagnostics
        if dg.get("ok", True):
            return
        hint = ""
        if self.posterior.settings.get("chains", 4) < 2:
            hint = "; run --chains 2 or more (the default is 4) so that R-hat can be computed"
        where = f"posterior kept in {self.folder}; " if self.folder else ""
        raise DiagnosticsError(
            "; ".join(dg["problems"])
            + f" — {dg.get('attempts') or 'one attempt'} ({where}every attempt's settings and diagnostics are "
            f"in its fit.json){hint}"
        )

    def summary(self) -> pd.DataFrame:
        """Per quantity (K, kappa, Ex, Ey per condition, effects, sigma, ...): mean, 90% HDI, R-hat, ESS,
        identification."""
        from bayes_l2l.diagnostics import summary_table

        return summary_table(self.posterior)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``bayes-l2l fit --json`` / ``show --json``."""
        out = comparisons.posterior_report(self.posterior)
        if self.folder is not None:
            out["output"] = str(self.folder)
        return out

    def _diagnostics_line(self) -> str:
        dg = self.diagnostics
        if self.posterior.method != "nuts":
            return str(dg.get("note", "approximate posterior"))
        status = "ok" if dg.get("ok") else "FAILED: " + "; ".join(dg.get("problems", []))
        return (
            f"max R-hat {dg.get('max_rhat') or float('nan'):.4f}, min bulk ESS {dg.get('min_ess_bulk') or 0:.0f}, "
            f"divergences {dg.get('divergences')} -> {status}"
        )

    def _repr_html_(self) -> str:
        d = self.design
        q = d.question
        lines = [
            f"{q.y} vs {q.x} ({q.units_label()}); factors: {', '.join(q.factors) or 'none'}; {len(d.points)} checkpoints, "
            f"{d.n_runs} runs, {d.n_conditions} conditions; method {self.posterior.method}",
            self._diagnostics_line(),
            str(self.diagnostics.get("attempts", "")),
        ]
        frame = self.summary().reset_index(names="quantity")
        return _html_table("posterior (90% HDI)", frame, [line for line in lines if line])

    def __repr__(self) -> str:
        q = self.question
        return f"<bayes_l2l.Fit {q.y} vs {q.x}, factors {q.factors}: {self._diagnostics_line()}>"

    # ------------------------------------------------------------------ what can be asked
    def compare(
        self,
        *factors: str | Sequence[str],
        rope: float | None = None,
        loo: bool = True,
        progress: Progress = None,
        min_support_points: int | None = None,
        min_support_fraction: float | None = None,
        kfold_budget_s: float | None = None,
    ) -> Evidence:
        """Does changing each factor shift the curve? ``factors`` default to every factor of the fit.
        ``rope``: region of practical equivalence of the gap (y's unit; default per unit, 0.02 nats/token,
        docs/evidence.md); ``loo``: leave-one-run-out elpd against one shared curve (fitted once per
        factor; cached in :attr:`folder` when saved); ``min_support_points`` / ``min_support_fraction``: the
        common x support a decision needs (default 2 checkpoints a side pinning the curve, inside it or nearest to it, and 10% of the narrower x range;
        below it the contrast is "not identifiable: too little common support"); ``kfold_budget_s``: seconds
        the K-fold-by-run refits may take where PSIS-LOO is unreliable (default 300; 0 turns K-fold off)."""
        names = [f for item in factors for f in _factors(item)] or list(self.design.factor_levels)
        contrasts, shared = comparisons.compare_factors(
            self.posterior,
            names,
            rope=rope,
            loo=loo,
            cache=self.folder,
            progress=progress,
            min_support_points=min_support_points,
            min_support_fraction=min_support_fraction,
            kfold_budget_s=kfold_budget_s,
        )
        return Evidence(self, contrasts, comparisons.check_rope(rope, self.question.y_unit), shared)

    def predict(
        self,
        x: float | Sequence[float] | np.ndarray | None = None,
        *,
        table: LossTable | str | Path | None = None,
        level: Mapping[str, str] | None = None,
        run: str | None = None,
    ) -> Predictions:
        """Predicted y at losses ``x`` (or at the x metric of every checkpoint of ``table``) for the condition
        ``level`` (other factors at base), or with ``run`` for further checkpoints of a fitted run. With
        ``table`` and a fit that used the error model, each checkpoint's own standard errors widen its
        interval and its residual_z (a measured y at a measured x, not at the true x)."""
        from bayes_l2l.evidence import predict
        from bayes_l2l.measurement import new_point_variances

        q = self.question
        if (x is None) == (table is None):
            raise UserInputError("give exactly one of --x VALUES (e.g. --x 3.1,2.9) or --from-table TABLE")
        if x is not None:
            xs = np.atleast_1d(np.asarray(x, dtype=float))
            if xs.size == 0 or not np.isfinite(xs).all() or (xs <= 0).any():
                raise UserInputError(f"--x {x!r}: losses are positive finite numbers (in {q.x_unit})")
            labels: list[str | None] = [None] * xs.size
            known = None
        else:
            pts = comparisons.new_points(
                *comparisons.observed_axes(_table(table), q, require_y=False), how="left"
            )
            xs = pts["x"].to_numpy(float)
            labels = [f"{r}@{c}" for r, c in zip(pts["run"], pts["checkpoint"], strict=True)]
            known = new_point_variances(self.posterior, pts)  # a measured y at a measured x, not a true one
        df = predict(self.posterior, xs, dict(level or {}), run=run, known=known)
        df.insert(0, "checkpoint", labels)
        if table is not None:
            df.insert(df.columns.get_loc("mean"), "y_observed", pts["y"].to_numpy(float))
            df.insert(
                df.columns.get_loc("mean") + 1, "residual_z", (df["y_observed"] - df["mean"]) / df["sd"]
            )
        diag = comparisons.diagnostics_summary(self.diagnostics)
        return Predictions(df, q.x, q.y, q.y_unit, diag)

    def test(
        self,
        new: LossTable | str | Path,
        *,
        against: Mapping[str, str] | None = None,
        where: Mapping[str, str] | None = None,
        rope: float | None = None,
        allow_mixed: bool = False,
    ) -> TestResult:
        """Do the checkpoints of the loss table ``new`` lie on the curve of ``against`` (FACTOR -> LEVEL,
        other factors at base; default the base curve)?"""
        res = comparisons.test_against_curve(
            self.posterior, new, against=against, where=where, rope=rope, allow_mixed=allow_mixed
        )
        return TestResult(res)

    def plot_curves(self, factors: Sequence[str] | None = None) -> Any:
        """A matplotlib Figure: the fitted curve of each condition with 50% and 90% bands over the data."""
        from bayes_l2l.plots import plot_curves

        return plot_curves(self.posterior, factors)

    def report(
        self,
        path: str | Path,
        *,
        compare: Sequence[str] | None = None,
        evidence: Evidence | None = None,
        rope: float | None = None,
        loo: bool = True,
        figures: str | Path | None = None,
        overwrite: bool = False,
        progress: Progress = None,
        survey: str | Path | None = None,
    ) -> Path:
        """Write one self-contained HTML report (question, data, diagnostics and every attempt, evidence,
        figures, caveats) to ``path``; ``compare``: factors (default all), or an ``evidence`` already made;
        ``figures``: also write PNG + SVG figures in that folder; ``survey``: a survey folder whose ranking
        across pairs gets a section (default: the survey this posterior folder belongs to, if any)."""
        from bayes_l2l.errors import check_output_file
        from bayes_l2l.report import build_report

        path = Path(path)
        check_output_file(path, overwrite)
        if evidence is None:
            names = list(dict.fromkeys(compare or self.design.factor_levels))
            evidence = (
                self.compare(*names, rope=rope, loo=loo, progress=progress)
                if names
                else Evidence(self, {}, comparisons.check_rope(rope, self.question.y_unit))
            )
        from bayes_l2l.survey_report import survey_section
        from bayes_l2l.surveys import read_survey, survey_of

        surveyed = read_survey(survey) if survey is not None else survey_of(self.folder)
        return build_report(
            self.posterior,
            evidence.contrasts,
            path,
            rope=evidence.rope,
            figures_dir=figures,
            overwrite=overwrite,
            sections=[survey_section(surveyed, self.folder)] if surveyed else [],
        )

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the posterior folder (posterior.nc, design.json, fit.json); :func:`load` reads it."""
        from bayes_l2l.posterior_files import check_posterior_folder

        check_posterior_folder(folder, overwrite=overwrite)
        path = self.posterior.save(folder, overwrite=overwrite)
        self.folder = Path(folder)
        return path


def load(folder: str | Path) -> Fit:
    """The fit saved in ``folder`` (by :meth:`Fit.save`, :func:`fit` with ``output``, or ``bayes-l2l fit``)."""
    from bayes_l2l.posterior import load as load_posterior

    return Fit(load_posterior(folder), folder)


def _fit_options(options: dict[str, Any]) -> Any:
    from bayes_l2l.robust_fit import FitOptions

    valid = [f.name for f in fields(FitOptions)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UserInputError(
            f"fit() got unknown option(s) {', '.join(unknown)}; the fit options are: {', '.join(valid)} "
            f"and the question's: {', '.join(QUESTION_OPTIONS)}"
        )
    return FitOptions(**options)


def design_of(
    table: LossTable | str | Path,
    x: str,
    y: str,
    factors: str | Sequence[str] | None = None,
    *,
    where: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    **question_options: Any,
) -> Any:
    """The :class:`~bayes_l2l.design.Design` of a question (points, runs, conditions, warnings), without
    fitting: what :func:`fit` would fit."""
    unknown = sorted(set(question_options) - set(QUESTION_OPTIONS))
    if unknown:
        raise UserInputError(
            f"unknown question option(s) {', '.join(unknown)}; use: {', '.join(QUESTION_OPTIONS)}"
        )
    return comparisons.build_question_design(
        _table(table), x=x, y=y, factors=_factors(factors), base=base, where=where, **question_options
    )


def fit(
    table: LossTable | str | Path,
    x: str,
    y: str,
    factors: str | Sequence[str] | None = None,
    *,
    where: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    output: str | Path | bool | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    **options: Any,
) -> Fit:
    """Fit the hierarchical loss-to-loss model of y against x, each factor allowed to move the curve, with
    the robust defaults (sampler settings chosen from the table and retried on failure, within a budget).

    ``where``: keep rows COLUMN == VALUE; ``base``: FACTOR -> base level. ``options``: the question's
    (unit, x_unit, y_unit, convert_units, allow_mixed, max_x, min_fraction, early_fraction, early_weight) and every option of
    :class:`~bayes_l2l.robust_fit.FitOptions` (method, chains, draws, warmup, seed, target_accept, mass,
    shape, run_offsets, effect_prior, compute, prior_ex, prior_ey, paper_mode, budget_s, retry): an option
    given is honoured as the first attempt. ``output``: a folder to save in (True: ``out/<question>/``);
    a folder holding the same fit is reused instead of refitted. A failed sampler does not raise: see
    :attr:`Fit.diagnostics` and :meth:`Fit.raise_for_diagnostics`.
    """
    question_options = {k: options.pop(k) for k in QUESTION_OPTIONS if k in options}
    fit_options = _fit_options(options)
    d = design_of(table, x, y, factors, where=where, base=base, **question_options)
    folder = comparisons.question_folder(d.question) if output is True else output or None
    post, _ = comparisons.fit_question(
        d,
        fit_options,
        output=None if folder is None else Path(folder),
        overwrite=overwrite,
        progress=progress,
    )
    return Fit(post, folder)


def survey(
    table: LossTable | str | Path,
    factor: str,
    output: str | Path,
    *,
    x: Sequence[str] = (),
    y: Sequence[str] = (),
    where: Mapping[str, str] | None = None,
    jobs: int = 1,
    progress: Progress = None,
    **options: Any,
) -> dict[str, Any]:
    """Does changing ``factor`` shift the curve, for every loss pair? Fits and compares each (x, y) pair
    (default: every validation metric as x; every other validation metric, every task and the named
    averages as y) into ``output/<y>_vs_<x>/`` with the robust defaults, in ``jobs`` processes; resumable
    (a pair whose folder holds the same fit is not refitted). Returns the JSON of ``bayes-l2l survey``
    (also ``output/survey.json``, and the grid figure ``output/grid.png``): {factor, pairs: [{x, y, status,
    contrasts, diagnostics, ...}], ranking}. ``options``: as :func:`fit`."""
    from bayes_l2l.surveys import run_survey

    return run_survey(
        table, factor, output, x=x, y=y, where=dict(where or {}), jobs=jobs, progress=progress, **options
    )
