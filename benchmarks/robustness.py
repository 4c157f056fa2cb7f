"""Robustness of the defaults: every question of the suite as one `bayes-l2l compare TABLE` command with no
sampler options, in a fresh process with an empty compilation cache (a cold start, as a new user has it).

Per question: the sampler attempts used (settings, wall, diagnostics), the whole command's wall, exit status,
R-hat, bulk / tail ESS, divergences and the decisions; on simulated tables, the planted truth beside them
(a contrast whose true mean gap exceeds the ROPE should read "shift", one with no planted effect should not).
Real tables come from ../shared/data (questions whose table is absent are skipped, saying so).

    .venv/bin/python benchmarks/robustness.py [--only NAME ...] [--out out/benchmarks/robustness]

Resumable: a question whose record exists in OUT/records/ is not rerun (``--rerun`` reruns them). Writes
OUT/summary.md and OUT/results.json; numbers and commands in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "analysis"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bayes_l2l.simulate import SimulationSpec, simulate_table  # noqa: E402
from bayes_l2l.table import LossTable  # noqa: E402

ROPE = 0.02
FIT_TARGET_S = 60.0
COMPARE_TARGET_S = 90.0


@dataclass
class SuiteQuestion:
    """One compare command: the table it needs, its options, and (simulated) the planted truth's table key."""

    name: str
    table: str
    x: str
    y: str
    factor: str
    where: dict[str, str] = field(default_factory=dict)
    base: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    """Question options (not sampler options): --min-fraction, further --factor of the model."""
    target_s: float = COMPARE_TARGET_S


PAPER_X = "val/fineweb_edu"


def suite() -> list[SuiteQuestion]:
    """The questions of issue 23's robustness suite."""
    qs = []
    for y in ("val/c4", "test/avg7"):
        tag = y.split("/")[1]
        qs += [
            SuiteQuestion(
                f"paper_data_{tag}", "paper", PAPER_X, y, "pretraining_data", {"architecture": "Llama"}
            ),
            SuiteQuestion(
                f"paper_arch_{tag}", "paper", PAPER_X, y, "architecture", {"tokenizer": "gpt-neox"}
            ),
            SuiteQuestion(
                f"paper_tok_{tag}",
                "paper",
                PAPER_X,
                y,
                "tokenizer",
                {"pretraining_data": "The Pile", "architecture": "GPT"},
            ),
        ]
    qs.append(
        SuiteQuestion(
            "gemstones_shape",
            "gemstones",
            "val/fineweb_edu",
            "val/dclm",
            "shape",
            extra=["--min-fraction", "0.1"],
        )
    )
    qs.append(SuiteQuestion("gadre_data", "gadre", "val/c4", "val/paloma_redpajama", "pretraining_data"))
    from mini_study.findings import BASE as MINI_BASE  # the study's base recipe, as its table writes it

    for factor in MINI_BASE:
        where = {f: lv for f, lv in MINI_BASE.items() if f != factor}
        qs.append(
            SuiteQuestion(
                f"mini_{factor}",
                "mini",
                "val/c4",
                "test/avg7",
                factor,
                where,
                extra=["--min-fraction", "0.05"],
            )
        )
    speed_factors = ["tokenizer", "architecture", "context_length", "optimizer", "learning_rate"]
    qs.append(
        SuiteQuestion(
            "speed_6000",
            "speed",
            "val/c4",
            "test/hellaswag",
            "pretraining_data",
            extra=[a for f in speed_factors for a in ("--factor", f)],
            target_s=30.0,
        )
    )
    qs.append(SuiteQuestion("sim_500x1", "sim_500x1", "val/c4", "test/hellaswag", "pretraining_data"))
    for factor in ("pretraining_data", "optimizer"):
        other = "optimizer" if factor == "pretraining_data" else "pretraining_data"
        qs.append(
            SuiteQuestion(
                f"sim_30x100_{factor}",
                "sim_30x100",
                "val/c4",
                "test/hellaswag",
                factor,
                extra=["--factor", other],
            )
        )
    return qs


# ----------------------------------------------------------------------------------------- tables
def _simulated(
    spec: SimulationSpec, seed: int, last_only: bool = False
) -> Callable[[Path], tuple[LossTable, Any]]:
    """A simulated table; ``last_only``: each run's final checkpoint only (final models of a sweep; the
    simulator itself writes at least two checkpoints per run)."""

    def build(shared: Path) -> tuple[LossTable, Any]:  # noqa: ARG001 - simulated: no shared data
        table, truth = simulate_table(spec, seed)
        if last_only:
            ck = table.checkpoints()
            last = ck.loc[ck.groupby("run")["step"].idxmax(), ["run", "checkpoint"]]
            table = LossTable.from_frame(
                table.df.merge(last, on=["run", "checkpoint"]), source=table.source, warnings=table.warnings
            )
        return table, truth

    return build


def _paper(shared: Path) -> tuple[LossTable, None]:
    from bayes_l2l.io import import_table

    return import_table("llm-line", [shared / "data/llm_line/latest_pm_hf.csv"]), None


def _gemstones(shared: Path) -> tuple[LossTable, None]:
    from gemstones import FILES, with_shape

    from bayes_l2l.io import import_table

    return with_shape(import_table("gemstones", [shared / f for f in FILES])), None


def _gadre(shared: Path) -> tuple[LossTable, None]:
    from gadre import MODELS

    from bayes_l2l.io import import_table

    return import_table("gadre", [shared / MODELS]), None


def _mini(shared: Path) -> tuple[LossTable, None]:  # noqa: ARG001
    from bayes_l2l.demo import MINI_STUDY

    return LossTable.read(MINI_STUDY), None


def _speed_spec() -> SimulationSpec:
    from speed import paper_scale_spec

    return paper_scale_spec(100)


SIM_500X1 = SimulationSpec(
    factors={"pretraining_data": ["c4", "rpj", "rw", "pile", "dolma", "fineweb"]},
    effects={
        "pretraining_data": {
            "rpj": {"E_y": 0.1},
            "rw": {"log_K": 0.15},
            "pile": {"E_y": -0.08, "log_kappa": 0.1},
            "dolma": {"E_y": 0.05},
        }
    },
    runs_per_condition=8,
    checkpoints_per_run=2,
    sizes=[float(s) for s in np.geomspace(2e7, 7e9, 10)],
    early_amp=0.0,
)
"""~500 final models (6 corpora x 10 sizes x 8 seeds; each run's last checkpoint is kept); 'fineweb' has no
planted effect."""

SIM_30X100 = SimulationSpec(
    factors={"pretraining_data": ["A", "B", "C"], "optimizer": ["adamw", "lion"]},
    effects={"pretraining_data": {"B": {"E_y": 0.1}, "C": {"log_K": 0.1}}},
    design="factorial",
    runs_per_condition=1,
    checkpoints_per_run=100,
    sizes=[float(s) for s in np.geomspace(1e8, 1.6e9, 5)],
)
"""30 runs x 100 checkpoints, two crossed factors (3 x 2 conditions x 5 sizes); optimizer has no effect."""

TABLES: dict[str, Callable[[Path], tuple[LossTable, Any]]] = {
    "paper": _paper,
    "gemstones": _gemstones,
    "gadre": _gadre,
    "mini": _mini,
    "speed": lambda shared: simulate_table(_speed_spec(), 0),
    "sim_500x1": _simulated(SIM_500X1, 0, last_only=True),
    "sim_30x100": _simulated(SIM_30X100, 0),
}
SHARED_FILES = {
    "paper": "data/llm_line/latest_pm_hf.csv",
    "gemstones": "data/gemstones",
    "gadre": "data/gadre2024",
}


def prepare_table(key: str, shared: Path, folder: Path) -> tuple[Path | None, Any, str | None]:
    """(parquet path, truth or None, why skipped or None); written once into ``folder``."""
    if key in SHARED_FILES and not (shared / SHARED_FILES[key]).exists():
        return None, None, f"{shared / SHARED_FILES[key]} is absent"
    path = folder / f"{key}.parquet"
    table, truth = TABLES[key](shared)
    if not path.exists():
        table.to_parquet(path)
    return path, truth, None


# ----------------------------------------------------------------------------------------- one command
def command(q: SuiteQuestion, table: Path, posterior: Path) -> list[str]:
    exe = Path(sys.executable).with_name("bayes-l2l")
    cmd = [str(exe), "compare", str(table), "--x", q.x, "--y", q.y, "--factor", q.factor]
    for k, v in q.where.items():
        cmd += ["--where", f"{k}={v}"]
    for k, v in q.base.items():
        cmd += ["--base", f"{k}={v}"]
    return [*cmd, *q.extra, "-o", str(posterior), "--overwrite", "--json"]


def run_question(q: SuiteQuestion, table: Path, truth: Any, out: Path) -> dict[str, Any]:
    """Run the command cold (fresh process, empty compilation cache); return its record."""
    posterior = out / "posteriors" / q.name
    shutil.rmtree(posterior, ignore_errors=True)  # cold: never a saved fit reused
    cmd = command(q, table, posterior)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "BAYES_L2L_COMPILE_CACHE": cache}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t0
    rec: dict[str, Any] = {
        "name": q.name,
        "command": " ".join(cmd[1:]).replace(str(REPO) + "/", ""),
        "exit": proc.returncode,
        "wall_s": wall,
        "target_s": q.target_s,
        "stderr_tail": proc.stderr[-2000:],
    }
    try:
        ev = json.loads(proc.stdout)
    except json.JSONDecodeError:
        rec["error"] = "no JSON on stdout"
        return rec
    fit = json.loads((posterior / "fit.json").read_text())
    rec["attempts"] = [
        {
            k: a.get(k)
            for k in (
                "run_offsets",
                "centred_runs",
                "shape",
                "mass",
                "target_accept",
                "warmup",
                "draws",
                "wall_s",
            )
        }
        | {"ok": a["diagnostics"].get("ok"), "problems": a["diagnostics"].get("problems")}
        for a in fit["settings"]["attempts"]
    ]
    rec["kept_attempt"] = fit["settings"].get("kept_attempt")
    rec["table_shape"] = fit["settings"]["policy"]["table_shape"]
    rec["fit_s"] = sum(a["wall_s"] for a in fit["settings"]["attempts"])
    dg = fit["diagnostics"]
    rec["diagnostics"] = {
        k: dg.get(k) for k in ("ok", "max_rhat", "worst_rhat", "min_ess_bulk", "min_ess_tail", "divergences")
    }
    factors = ev.get("factors") or []
    contrasts = []
    for f in factors:
        if f["factor"] != q.factor:
            continue
        for c in f["contrasts"]:
            row = {
                "level": c["level"],
                "base": c["base"],
                "gap_mean": c["gap_mean"],
                "gap_hdi90": c["gap_hdi90"],
                "decision": c["decision"],
                "matched_on": c["matched_on"],
                "support": c["support"],
                "elpd": c.get("elpd_diff"),
            }
            if truth is not None:
                row["true_mean_gap"] = true_mean_gap(truth, q.factor, c)
                row["expected"] = expected_decision(truth, q.factor, c["level"], row["true_mean_gap"])
            contrasts.append(row)
    rec["contrasts"] = contrasts
    return rec


def true_mean_gap(truth: Any, factor: str, contrast: dict[str, Any]) -> float:
    """The planted curve gap averaged over the contrast's own common support (the x range its estimate
    averages over; the simulation's own support spans checkpoints the question may not use)."""
    from bayes_l2l.evidence import GRID_POINTS

    lo, hi = contrast["support"]
    if lo is None or hi is None or not hi > lo:
        return float("nan")
    levels = {**contrast["matched_on"], factor: contrast["base"]}
    base = truth.condition_row(levels)["condition"]
    level = truth.condition_row({**levels, factor: contrast["level"]})["condition"]
    return float(np.mean(truth.gap(level, base, np.linspace(lo, hi, GRID_POINTS))))


def expected_decision(truth: Any, factor: str, level: str, true_gap: float) -> str:
    """'shift' where the true mean gap exceeds the ROPE, 'not shift' where the level has no planted effect,
    'either' in between (a real but small effect)."""
    planted = truth.effects.get(factor, {}).get(level)
    if not planted:
        return "not shift"
    return "shift" if abs(true_gap) > ROPE else "either"


def decisions_right(rec: dict[str, Any]) -> bool | None:
    rows = [c for c in rec.get("contrasts", []) if "expected" in c]
    if not rows:
        return None
    return all(
        (c["expected"] == "shift" and c["decision"] == "shift")
        or (c["expected"] == "not shift" and c["decision"] != "shift")
        or c["expected"] == "either"
        for c in rows
    )


# ----------------------------------------------------------------------------------------- summary
def _f(v: Any, fmt: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def summary(records: list[dict[str, Any]], skipped: dict[str, str]) -> str:
    lines = [
        "# Robustness of the defaults (benchmarks/robustness.py)",
        "",
        "Each question: one `bayes-l2l compare TABLE ... --json` with no sampler options, a fresh process, an",
        "empty compilation cache. Gate: R-hat <= 1.01, bulk and tail ESS >= 400, 0 divergences, BFMI >= 0.3.",
        "",
        "| question | points / runs | attempts (kept) | kept settings | fit s | command s | exit | max R-hat | "
        "bulk / tail ESS | div | decisions | truth |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "attempts" not in r:
            lines.append(
                f"| {r['name']} | — | — | — | — | {r['wall_s']:.0f} | {r['exit']} | {r.get('error')} |"
            )
            continue
        a = r["attempts"][(r["kept_attempt"] or len(r["attempts"])) - 1]
        offs = a["run_offsets"] + (f" ({a['centred_runs']} centred)" if a.get("centred_runs") else "")
        settings = f"{a['shape']}, {offs}, {a['mass']}, {a['target_accept']:g}, {a['warmup']}+{a['draws']}"
        dg = r["diagnostics"]
        dec = "; ".join(
            f"{c['level']}: {c['decision']} ({_f(c['gap_mean'], '+.3f')})" for c in r["contrasts"]
        )
        right = decisions_right(r)
        truth = "—" if right is None else ("right" if right else "**WRONG**")
        shape = r["table_shape"]
        lines.append(
            f"| {r['name']} | {shape['points']} / {shape['runs']} | {len(r['attempts'])} ({r['kept_attempt']}) | "
            f"{settings} | {r['fit_s']:.0f} | {r['wall_s']:.0f} | {r['exit']} | {_f(dg['max_rhat'])} | "
            f"{_f(dg['min_ess_bulk'], '.0f')} / {_f(dg['min_ess_tail'], '.0f')} | {dg['divergences']} | {dec} | "
            f"{truth} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} |")
    passed = [r for r in records if r.get("diagnostics", {}).get("ok")]
    in_time = [r for r in records if r["wall_s"] <= r["target_s"]]
    lines += [
        "",
        f"Diagnostics passed: {len(passed)} of {len(records)}; exit 0: {sum(r['exit'] == 0 for r in records)}; "
        f"within the time target (compare <= 90 s, the 6,000-checkpoint table <= 30 s): {len(in_time)} of "
        f"{len(records)}; simulated decisions right: "
        f"{sum(decisions_right(r) is True for r in records)} of {sum(decisions_right(r) is not None for r in records)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "out/benchmarks/robustness")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--only", nargs="*", help="question names (default: all)")
    ap.add_argument("--rerun", action="store_true", help="rerun questions that already have a record")
    args = ap.parse_args(argv)
    (args.out / "records").mkdir(parents=True, exist_ok=True)
    (args.out / "tables").mkdir(parents=True, exist_ok=True)
    questions = [q for q in suite() if not args.only or q.name in args.only]
    tables: dict[str, tuple[Path | None, Any, str | None]] = {}
    records, skipped = [], {}
    for q in questions:
        if q.table not in tables:
            tables[q.table] = prepare_table(q.table, args.shared, args.out / "tables")
        path, truth, why = tables[q.table]
        if path is None:
            skipped[q.name] = why
            print(f"{q.name}: skipped ({why})", file=sys.stderr)
            continue
        rec_path = args.out / "records" / f"{q.name}.json"
        if rec_path.exists() and not args.rerun:
            records.append(json.loads(rec_path.read_text()))
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {q.name} ...", file=sys.stderr, flush=True)
        rec = run_question(q, path, truth, args.out)
        rec_path.write_text(json.dumps(rec, indent=1, default=float))
        records.append(rec)
        dg = rec.get("diagnostics", {})
        print(
            f"  exit {rec['exit']}, {rec['wall_s']:.0f} s, attempts {len(rec.get('attempts', []))}, "
            f"R-hat {_f(dg.get('max_rhat'))}, ESS {_f(dg.get('min_ess_bulk'), '.0f')}, div {dg.get('divergences')}; "
            + "; ".join(f"{c['level']}: {c['decision']}" for c in rec.get("contrasts", [])),
            file=sys.stderr,
            flush=True,
        )
    # the summary covers every question of the suite with a record, not only this call's (--only)
    done = {r["name"] for r in records}
    for q in suite():
        rec_path = args.out / "records" / f"{q.name}.json"
        if q.name not in done and rec_path.exists():
            records.append(json.loads(rec_path.read_text()))
    order = {q.name: i for i, q in enumerate(suite())}
    records.sort(key=lambda r: order.get(r["name"], len(order)))
    (args.out / "summary.md").write_text(summary(records, skipped))
    (args.out / "results.json").write_text(
        json.dumps({"records": records, "skipped": skipped}, indent=1, default=float)
    )
    print(f"wrote {args.out / 'summary.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
