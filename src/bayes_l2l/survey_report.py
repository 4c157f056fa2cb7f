"""The survey's self-contained HTML report: question, ranking across pairs, grid figure, every pair, caveats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayes_l2l.report import CSS, _decision, _e, _f, _iv, _png_data_uri, _table


def _ranking_section(survey: dict[str, Any]) -> str:
    rows = [
        [
            _e(r["level"]),
            str(r["pairs"]),
            str(r["decided"]),
            "—" if r["share_shift"] != r["share_shift"] else f"{r['share_shift']:.0%}",
            _f(r["median_gap"], "+.3f"),
            _iv((r["lo"], r["hi"]), "+.3f"),
            _e(r.get("units", "")),
        ]
        for r in survey["ranking"]
    ]
    header = [
        "level",
        "pairs",
        "standing decisions",
        "share shift",
        "median mean gap",
        "5-95% over pairs",
        "units",
    ]
    return (
        "<h2>Ranking across pairs</h2><p>Per level: the pairs compared, those whose decision stands (sampler "
        "diagnostics passed, enough common support), the share of those decided <b>shift</b>, and the median "
        "and 5-95% range of their mean gaps (each pair in its own y unit).</p>"
        + _table(header, rows, (1, 2, 4))
    )


def _pairs_section(survey: dict[str, Any]) -> str:
    levels = list(dict.fromkeys(c["level"] for p in survey["pairs"] for c in p["contrasts"]))
    rows = []
    for p in survey["pairs"]:
        by_level = {c["level"]: c for c in p["contrasts"]}
        cells = [
            f"<code>{_e(p['x'])}</code>",
            f"<code>{_e(p['y'])}</code>",
            _e(p.get("y_unit") or ""),
            _e(p["status"]),
        ]
        for lv in levels:
            c = by_level.get(lv)
            cells.append(
                "—"
                if c is None
                else f"{_f(c['gap_mean'], '+.3f')} {_iv(c['gap_hdi90'], '+.3f')} {_decision(c['decision'])}"
            )
        rows.append(cells)
    header = ["x", "y", "y unit", "status", *(f"{lv}: mean gap [90% HDI], decision" for lv in levels)]
    return "<h2>Every pair</h2>" + _table(header, rows)


def _caveats(survey: dict[str, Any]) -> str:
    items = [
        "Each pair is its own fit (robust defaults) and its own decision; pairs share checkpoints, so their "
        "decisions are not independent evidence, and the share of pairs decided shift is a summary, not a test.",
        "The survey reads curve gaps; it runs no out-of-sample (LOO or K-fold) comparison per pair: run "
        "<code>bayes-l2l compare</code> on a pair's folder for it.",
    ]
    for p in survey["pairs"]:
        if p["status"] == "error":
            items.append(f"{_e(p['y'])} vs {_e(p['x'])}: not fitted: {_e(p['error'])}")
        elif p["status"] != "ok":
            problems = "; ".join(p["diagnostics"].get("problems") or [])
            items.append(
                f"{_e(p['y'])} vs {_e(p['x'])}: sampler in doubt ({_e(problems)}); decisions withheld"
            )
    confounded = sorted(
        {d["column"] for p in survey["pairs"] for c in p["contrasts"] for d in c.get("confounded_with") or []}
    )
    if confounded:
        items.append(
            f"Contrasts confounded with run-level columns: {_e(', '.join(confounded))} (see each pair)."
        )
    return "<h2>Caveats</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def survey_section(survey: dict[str, Any], folder: str | Path | None) -> str:
    """The per-posterior report's section on the survey this posterior belongs to: the ranking of the
    factor's levels across every pair, this pair's row, and where the survey's own report is."""
    from bayes_l2l.surveys import REPORT_FILE

    mine = [p for p in survey["pairs"] if folder is not None and Path(p["folder"]).name == Path(folder).name]
    own = ""
    if mine:
        own = "<p>This pair in the survey:</p>" + _pairs_section({**survey, "pairs": mine}).replace(
            "<h2>Every pair</h2>", ""
        )
    root = Path(mine[0]["folder"]).parent if mine else None
    where = f" (<code>{_e(root / REPORT_FILE)}</code>)" if root is not None else ""
    return (
        f"<h2>Across the survey of {_e(survey['factor'])}</h2><p>This question is one of "
        f"{survey['n_pairs']} (x, y) pairs surveyed for <b>{_e(survey['factor'])}</b>; the survey's report{where} "
        "has the grid and every pair.</p>"
        + _ranking_section(survey).replace("<h2>Ranking across pairs</h2>", "")
        + own
    )


def build_survey_report(survey: dict[str, Any], path: Path, grid_figure: Any) -> Path:
    """Write the survey report to ``path`` (replaced atomically); ``grid_figure``: the grid's Figure."""
    title = f"bayes-l2l survey: does {survey['factor']} shift the loss-to-loss curves?"
    where = ", ".join(f"{k}={v}" for k, v in survey["where"].items()) or "none"
    doc = "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><h1>{_e(title)}</h1>",
            f"<p>{survey['n_pairs']} (x, y) pairs; filters: {_e(where)}; this call took {survey['wall_s']:.0f} s (pairs reused from "
            "an earlier call are not refitted).</p>",
            _ranking_section(survey),
            f'<h2>Grid</h2><figure><img alt="survey grid" src="{_png_data_uri(grid_figure)}"><figcaption>Rows x, '
            "columns y, one panel per level: colour = decision, hatched = not identifiable (too little common "
            "support), text = mean gap with 90% HDI in the pair's y unit.</figcaption></figure>",
            _pairs_section(survey),
            _caveats(survey),
            "</body></html>",
        ]
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
