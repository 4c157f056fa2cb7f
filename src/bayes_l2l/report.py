"""One self-contained HTML report of a posterior and its evidence (figures embedded as base64 PNG).

Sections: the question; the data used, dropped and why; sampler diagnostics (problems in red); the
evidence table (curve gaps, decisions, LOO by run) and parameter effects with identification flags; the
figures; the caveats. A simulated table is labelled SIMULATED in the title and a banner.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_l2l.diagnostics import prior_check
from bayes_l2l.errors import check_output_file
from bayes_l2l.evidence import ContrastResult, gap_unit, rank_factors
from bayes_l2l.posterior import Posterior, versions
from bayes_l2l.where import condition_text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.55em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em} th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{background:#fbe3f2;border:2px solid #b0287a;color:#6d1049;padding:.6em 1em;font-weight:600;margin:1em 0}
.ok{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600}
.problems{background:#fdecea;border:1px solid #b3261e;padding:.5em 1em}
.shift{color:#b3261e;font-weight:600} .noshift{color:#137333;font-weight:600} .undecided{color:#7a5b00;font-weight:600}
figure{margin:1.2em 0} figure img{max-width:100%;height:auto;border:1px solid #eee} figcaption{font-size:.88em;color:#555}
.muted{color:#666;font-size:.9em} code{background:#f4f4f4;padding:0 .2em}
"""
FIGURE_CAPTIONS = {
    "curves": "Posterior loss-to-loss curves (median, 50% and 90% credible bands) with the observed checkpoints; "
    "one panel per factor: the base condition and the conditions that change only that factor. Dashed: "
    "beyond the observed x range.",
    "gaps": "Curve gap of each contrast (level − base) over the x range both conditions cover: mean gap and "
    "largest |gap|, 90% HDI; grey band: the ROPE.",
    "effects": "Parameter effects of each contrast, 90% HDI. Hollow markers: weakly or not identified (the "
    "prior, not the data, sets that interval).",
    "ranking": "Factors sorted by their largest curve gap (90% HDI); grey band: the ROPE.",
    "rank": "Rank histograms per chain: flat and inside the grey band when the chains agree.",
    "ppc": "Posterior-predictive check: residual of each checkpoint against the predictive median, with the "
    "50% and 90% predictive intervals.",
}


def is_simulated(post: Posterior) -> bool:
    """True when the x and y of every checkpoint come from the simulator (estimator 'simulated')."""
    pts = post.design.points
    cols = [c for c in ("x_estimator", "y_estimator") if c in pts]
    return bool(cols) and all(pts[c].astype(str).str.contains("simulated").all() for c in cols)


# ------------------------------------------------------------------------------------------ formatting
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _f(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, fmt)


def _iv(lohi: Sequence[Any], fmt: str = ".3f") -> str:
    return f"[{_f(lohi[0], fmt)}, {_f(lohi[1], fmt)}]"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _decision(decision: str) -> str:
    cls = {"shift": "shift", "no practical shift": "noshift"}.get(decision, "undecided")
    return f'<span class="{cls}">{_e(decision)}</span>'


def _png_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------ sections
def _question_section(post: Posterior) -> str:
    q = post.design.question
    d = post.design
    rows = [
        ("x (validation axis)", f"<code>{_e(q.x)}</code> ({_e(q.x_unit)})"),
        ("y", f"<code>{_e(q.y)}</code> ({_e(q.y_unit)}: the unit of every gap and of the ROPE)"),
        (
            "factors (base level first)",
            "; ".join(f"{_e(f)}: {_e(', '.join(lv))}" for f, lv in d.factor_levels.items()) or "none",
        ),
        ("filters", _e(", ".join(condition_text(k, v) for k, v in q.where.items()) or "none")),
    ]
    if q.max_x is not None:
        rows.append(("early checkpoints", f"dropped where x &gt; {_f(q.max_x, 'g')} {_e(q.x_unit)}"))
    if q.min_fraction is not None:
        rows.append(
            ("early checkpoints", f"dropped before {_f(100 * q.min_fraction, 'g')}% of their run's training")
        )
    if q.early_fraction > 0:
        rows.append(
            (
                "early checkpoints",
                f"weight {_f(q.early_weight, 'g')} before {_f(100 * q.early_fraction, 'g')}% of training",
            )
        )
    me = post.settings.get("measurement_error")
    if me:
        rows.append(("measurement error (stderr)", _e(me["reason"])))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        "<h2>Question</h2><p>Does changing a factor shift the loss-to-loss curve "
        "<i>L<sub>y</sub> = K (L<sub>x</sub> − E<sub>x</sub>)<sup>κ</sup> + E<sub>y</sub></i>?</p>"
        f"<table><tbody>{body}</tbody></table>"
    )


def _data_section(post: Posterior) -> str:
    d = post.design
    pts = d.points
    est = sorted(
        {str(v) for c in ("x_estimator", "y_estimator") if c in pts for v in pts[c].astype(str).unique()}
    )
    out = [
        "<h2>Data</h2>",
        f"<p>{len(pts)} checkpoints in {d.n_runs} runs and {d.n_conditions} condition(s); "
        f"estimator(s): {_e(', '.join(est) or 'unknown')}.</p>",
    ]
    rows = [
        [
            _e(r.condition),
            str(int(r.n_runs)),
            str(int(r.n_points)),
            f"{_f(r.min_x)} – {_f(r.max_x)}",
            f"{_f(r.min_y)} – {_f(r.max_y)}",
        ]
        for r in d.conditions.itertuples(index=False)
    ]
    q = d.question
    out.append(
        _table(
            ["condition", "runs", "checkpoints", f"x range ({_e(q.x_unit)})", f"y range ({_e(q.y_unit)})"],
            rows,
            (1, 2),
        )
    )
    if d.dropped:
        items = "".join(
            f"<li>{int(item.get('count', 0))} dropped: {_e(item.get('reason', ''))}</li>"
            for item in d.dropped
        )
        out.append(f"<p>Left out of the fit:</p><ul>{items}</ul>")
    else:
        out.append("<p>No checkpoint of the selection was dropped.</p>")
    return "".join(out)


def _diagnostics_section(post: Posterior, coverage: Mapping[float, float] | None) -> str:
    dg = post.diagnostics
    s = post.settings
    out = ["<h2>Sampler diagnostics</h2>"]
    if post.method == "nuts":
        rows = [
            (
                "method",
                f"NUTS, {s.get('chains')} chains × {s.get('draws')} draws ({s.get('warmup')} warm-up)",
            ),
            ("max R-hat (≤ 1.01)", _f(dg.get("max_rhat"), ".4f")),
            (
                "min bulk / tail ESS",
                f"{_f(dg.get('min_ess_bulk'), '.0f')} / {_f(dg.get('min_ess_tail'), '.0f')}",
            ),
            ("divergent transitions", _f(dg.get("divergences"), "d")),
            ("min BFMI (≥ 0.3)", _f(dg.get("min_bfmi"), ".2f")),
            ("tree-depth saturation", _f(dg.get("tree_depth_saturation"), ".1%")),
            ("wall time", f"{_f(post.wall_time_s, '.1f')} s"),
        ]
    else:
        rows = [
            ("method", f"approximate (Laplace), {s.get('draws')} draws"),
            ("note", _e(dg.get("note", ""))),
            ("wall time", f"{_f(post.wall_time_s, '.1f')} s"),
        ]
    if coverage:
        rows.append(
            (
                "observed in posterior-predictive 50% / 90% interval",
                f"{_f(coverage.get(0.5), '.0%')} / {_f(coverage.get(0.9), '.0%')}",
            )
        )
    pc = prior_check(post)
    if pc.get("available"):
        rows.append(("observed inside prior-predictive 90%", _f(pc["observed_in_prior_90"], ".0%")))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    out.append(f"<table><tbody>{body}</tbody></table>")
    out.append(_attempts_table(post))
    problems = dg.get("problems") or []
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems)
        out.append(
            '<div class="problems"><span class="bad">DIAGNOSTICS FAILED</span> — the numbers below are in '
            f"doubt; rerun with more warm-up/draws or inspect the model:<ul>{items}</ul></div>"
        )
    elif post.method == "nuts":
        out.append('<p class="ok">All sampler diagnostics passed.</p>')
    return "".join(out)


def _attempts_table(post: Posterior) -> str:
    """Every sampler attempt of the fit (settings chosen from the table and from what failed): settings,
    wall, diagnostics; the kept one marked."""
    records = post.settings.get("attempts") or []
    if not records:
        return ""
    kept = post.settings.get("kept_attempt")
    rows = []
    for i, a in enumerate(records, start=1):
        d = a["diagnostics"]
        offsets = a["run_offsets"] + (f" ({a['centred_runs']} runs centred)" if a.get("centred_runs") else "")
        rows.append(
            [
                f"{i}{' (kept)' if i == kept else ''}",
                _e(f"{a['shape']}, {offsets}, mass {a['mass']}, accept {a['target_accept']:g}"),
                f"{a['chains']} × ({a['warmup']} + {a['draws']})",
                _f(a["wall_s"], ".0f"),
                _f(d.get("max_rhat"), ".3f"),
                f"{_f(d.get('min_ess_bulk'), '.0f')} / {_f(d.get('min_ess_tail'), '.0f')}",
                _f(d.get("divergences"), "d"),
                '<span class="ok">passed</span>'
                if d.get("ok")
                else '<span class="bad">failed</span>: ' + _e("; ".join(d.get("problems") or [])),
                _e(a.get("reason", "")),
            ]
        )
    header = ["#", "settings", "chains × (warm-up + draws)", "wall s", "max R-hat", "bulk / tail ESS"]
    header += ["div.", "result", "why this attempt"]
    return f"<p>{_e(post.diagnostics.get('attempts', ''))}</p>" + _table(header, rows, numeric=(3, 4, 6))


def _truth_lookup(truth: pd.DataFrame | None) -> dict[tuple[str, str], Any]:
    if truth is None or truth.empty:
        return {}
    return {(str(r.factor), str(r.level)): r for r in truth.itertuples(index=False)}


def _evidence_section(
    compares: Mapping[str, Sequence[ContrastResult]], rope: float, truth: pd.DataFrame | None
) -> str:
    unit = _e(gap_unit(compares))
    out = [
        "<h2>Evidence</h2>",
        f"<p>Gap Δ(x) = f<sub>level</sub>(x) − f<sub>base</sub>(x) over the x range both conditions cover, in "
        f"{unit}. Decision with ROPE r = {_f(rope, 'g')} {unit}: <b>shift</b> if P(max|Δ| &gt; r) ≥ 0.95, "
        "<b>no practical shift</b> if P(max|Δ| &lt; r) ≥ 0.95, else <b>undecided</b>. elpd diff: "
        "leave-one-run-out log score of separate curves minus one shared curve (positive favours separate "
        "curves).</p>",
    ]
    if not compares:
        out.append("<p>No factor was compared (the fit has no factor with two levels).</p>")
        return "".join(out)
    tl = _truth_lookup(truth)
    header = [
        "factor",
        "level vs base",
        "matched on",
        "x support",
        "mean gap [90% HDI]",
        "max |gap| [90% HDI]",
        "P(shift)",
        "decision",
        "elpd diff ± se (per factor)",
    ]
    if tl:
        header += ["true mean gap", "true max |gap|"]
    rows = []
    for f, contrasts in compares.items():
        for i, c in enumerate(contrasts):
            if c.elpd_diff is None:
                elpd = "—"
            elif i > 0:  # one leave-one-run-out comparison per factor, not per level
                elpd = "(the factor's, above)"
            else:
                elpd = f"{_f(c.elpd_diff, '.1f')} ± {_f(c.elpd_se, '.1f')}"
            row = [
                _e(f),
                _e(f"{c.level} vs {c.base}"),
                _e(", ".join(f"{k}={v}" for k, v in c.matched_on.items()) or "—"),
                _iv(c.support),
                f"{_f(c.gap_mean, '+.3f')} {_iv(c.gap_hdi90, '+.3f')}",
                f"{_f(c.gap_maxabs)} {_iv(c.gap_maxabs_hdi90)}",
                _f(c.p_shift, ".2f"),
                _decision(c.decision),
                elpd,
            ]
            if tl:
                t = tl.get((f, c.level))
                row += [_f(getattr(t, "mean_gap", None), "+.3f"), _f(getattr(t, "max_abs_gap", None))]
            rows.append(row)
    out.append(_table(header, rows, (6,)))
    if len(compares) > 1:
        ranking = rank_factors(dict(compares))
        rrows = [
            [_e(r.factor), _e(r.level), _f(r.gap_maxabs), _iv((r.lo, r.hi)), _decision(str(r.decision))]
            for r in ranking.itertuples()
        ]
        out.append("<h3>Factor ranking (largest gap first)</h3>")
        out.append(_table(["factor", "level", f"max |gap| ({unit})", "90% HDI", "decision"], rrows, (2,)))
    prow = []
    for f, contrasts in compares.items():
        for c in contrasts:
            if not c.params:
                continue
            cells = [_e(f), _e(f"{c.level} vs {c.base}")]
            for key in ("delta_log_K", "delta_log_kappa", "delta_Ex", "delta_Ey"):
                eff = c.params.get(key, {})
                flag = eff.get("identified", "unknown")
                mark = (
                    "" if flag in ("identified", "fixed") else f' <span class="undecided">({_e(flag)})</span>'
                )
                cells.append(
                    f"{_f(eff.get('mean'), '+.3f')} {_iv(eff.get('hdi90', [None, None]), '+.3f')}{mark}"
                )
            prow.append(cells)
    if prow:
        out.append("<h3>Parameter effects (level − base, 90% HDI)</h3>")
        out.append(
            _table(["factor", "contrast", "Δ log K", "Δ log κ", "Δ Ex (x's unit)", "Δ Ey (y's unit)"], prow)
        )
    return "".join(out)


def _caveats_section(
    post: Posterior,
    compares: Mapping[str, Sequence[ContrastResult]],
    simulated: bool,
    notes: Sequence[str],
) -> str:
    items: list[str] = []
    if simulated:
        items.append(
            "<b>The data are SIMULATED</b> (a synthetic table with planted effects): the results show what the "
            "method does, not how real models behave."
        )
    ident = post.identification
    if ident is not None and "identified" in ident:
        weak = ident[ident["identified"].isin(["weak", "not identified", "not physical"])]
        if len(weak):
            names = ", ".join(f"{n} ({flag})" for n, flag in weak["identified"].items())
            items.append(
                "Weakly or not identified (the prior, not the data, sets their intervals; read the curve gaps "
                f"instead; 'not physical': a loss floor below 0, an artefact of extrapolation): {_e(names)}."
            )
        else:
            items.append(
                "Every reported curve parameter and effect is identified by the data (contraction ≥ 0.75)."
            )
    for w in post.design.warnings:
        items.append(f"Table / design warning: {_e(w)}")
    for contrasts in compares.values():
        for c in contrasts:
            if c.elpd_note:  # one leave-one-run-out comparison per factor
                items.append(f"{_e(c.factor)}: {_e(c.elpd_note)}")
            if c.note:
                items.append(f"{_e(c.factor)} = {_e(c.level)}: {_e(c.note)}")
            if c.decision.startswith("not identifiable"):
                items.append(f"{_e(c.factor)} = {_e(c.level)}: {_e(c.decision)}")
            if c.reconciliation:
                items.append(
                    f"{_e(c.factor)} = {_e(c.level)}, decision and prediction: {_e(c.reconciliation)}"
                )
    if post.method != "nuts":
        items.append(_e(post.diagnostics.get("note", "approximate posterior")))
    items.append(
        "Checkpoints of one run share a run offset; the out-of-sample comparison holds whole runs out. A run "
        "alone in its condition cannot be predicted by separate curves, which lowers their elpd."
    )
    items += [_e(n) for n in notes]
    return "<h2>Caveats</h2><ul>" + "".join(f"<li>{i}</li>" for i in dict.fromkeys(items)) + "</ul>"


# ------------------------------------------------------------------------------------------ entry point
def build_report(
    post: Posterior,
    compares: Mapping[str, Sequence[ContrastResult]],
    out_html: str | Path,
    *,
    rope: float = 0.02,
    figures_dir: str | Path | None = None,
    simulated: bool | None = None,
    title: str | None = None,
    truth: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    overwrite: bool = False,
    figures: Mapping[str, Any] | None = None,
    sections: Sequence[str] = (),
) -> Path:
    """Write the self-contained HTML report to ``out_html`` (refused if it exists, unless ``overwrite``).

    ``compares``: factor -> contrasts from ``evidence.compare_factor``; ``figures_dir``: also write each
    figure there as PNG and SVG; ``simulated``: label the data SIMULATED (None: detect from the estimator);
    ``truth``: for simulated data, ``SimulationTruth.gap_summaries()`` to show the true gaps beside the
    estimates; ``notes``: extra caveats; ``figures``: figures already made by ``plots.make_figures`` (the
    caller keeps and closes them; default: made here and closed); ``sections``: extra HTML sections placed
    after the evidence (e.g. :func:`bayes_l2l.survey_report.survey_section`).
    """
    import matplotlib.pyplot as plt

    from bayes_l2l import plots

    out_html = Path(out_html)
    check_output_file(out_html, overwrite)
    simulated = is_simulated(post) if simulated is None else simulated
    q = post.design.question
    title = title or f"bayes-l2l report: {q.y} vs {q.x}"
    if simulated and "SIMULATED" not in title:
        title = f"SIMULATED DATA — {title}"
    figs = figures if figures is not None else plots.make_figures(post, compares, rope)
    try:
        if figures_dir is not None:
            plots.write_figures(figs, figures_dir, overwrite=overwrite)
        fig_html = "".join(
            f'<figure><img alt="{_e(name)}" src="{_png_data_uri(fig)}">'
            f"<figcaption>{_e(FIGURE_CAPTIONS.get(name, name))}</figcaption></figure>"
            for name, fig in figs.items()
        )
    finally:
        if figures is None:
            for fig in figs.values():
                plt.close(fig)
    coverage = plots.ppc_coverage(post)
    banner = (
        '<div class="banner">SIMULATED DATA: this table was generated by <code>bayes_l2l.simulate</code> with '
        "planted effects. Nothing here is a measurement of real models.</div>"
        if simulated
        else ""
    )
    vers = versions()
    footer = (
        f'<p class="muted">bayes-l2l {_e(vers.get("bayes_l2l"))}, numpyro {_e(vers.get("numpyro"))}, '
        f"jax {_e(vers.get('jax'))}, arviz-base {_e(vers.get('arviz_base'))}; seed {_e(post.settings.get('seed'))}.</p>"
    )
    doc = "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            banner,
            _question_section(post),
            _data_section(post),
            _diagnostics_section(post, coverage),
            _evidence_section(compares, rope, truth),
            *sections,
            "<h2>Figures</h2>",
            fig_html,
            _caveats_section(post, compares, simulated, notes),
            footer,
            "</body></html>",
        ]
    )
    out_html.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_html.with_name(out_html.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out_html)
    return out_html
