"""`bayes-l2l compare | test | predict | report | demo` end to end: exit codes, JSON keys, files.

Fast paths use a synthetic posterior folder (draws around a simulated table's truth, see test_plots);
three real (short NUTS) fits run here: the quick demo, the shared-curve fit for LOO, and a fit of a table.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from test_plots import synthetic_posterior

from bayes_l2l.cli import main
from bayes_l2l.comparisons import shared_fit
from bayes_l2l.infer import load
from bayes_l2l.simulate import SimulationSpec, simulate_table

CONTRAST_KEYS = {
    "level",
    "matched_on",
    "support",
    "gap_mean",
    "gap_hdi90",
    "gap_maxabs",
    "p_shift",
    "decision",
    "elpd_diff",
    "elpd_se",
}
DIAG_KEYS = {"max_rhat", "min_ess_bulk", "divergences", "ok"}
AXES = "--x val/c4 --y test/hellaswag"  # the simulated tables' axes


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """A posterior folder with good diagnostics (synthetic draws), factors pretraining_data, architecture."""
    folder = tmp_path_factory.mktemp("synthetic") / "posterior"
    synthetic_posterior().save(folder)
    return folder


@pytest.fixture(scope="module")
def new_tables(tmp_path_factory):
    """New checkpoints (another seed) of the shifted level 'code' and of the base recipe."""
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]},
        effects={"pretraining_data": {"code": {"E_y": 0.2}}},
        runs_per_condition=1,
        checkpoints_per_run=6,
        sizes=[160e6],
    )
    table, _ = simulate_table(spec, seed=11)
    folder = tmp_path_factory.mktemp("new")
    code = table.where(pretraining_data="code").save(folder / "code.parquet")
    base = table.where(pretraining_data="web", architecture="llama").save(folder / "base.parquet")
    other = table.where(pretraining_data="code")
    other = replace(other, df=other.df.assign(estimator="my-own-eval"))
    return {"code": code, "base": base, "other_estimator": other.save(folder / "other_estimator.parquet")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`bayes-l2l demo --quick` once (a real NUTS fit); returns (exit code, out folder)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--quick", "--simulated", "--out", str(out)])
    return code, out


# ------------------------------------------------------------------------------------------ demo
def test_demo_quick_writes_everything_and_labels_simulated(demo) -> None:
    code, out = demo
    ev = json.loads((out / "evidence.json").read_text())
    assert code == (0 if ev["diagnostics_ok"] else 3)
    assert ev["data"].startswith("simulated") and ev["simulated"] is True
    assert ev["loo"] == "skipped (--quick)"
    assert {f["factor"] for f in ev["factors"]} == {"pretraining_data", "architecture", "size"}
    for f in ev["factors"]:
        for c in f["contrasts"]:
            assert CONTRAST_KEYS <= set(c)
    assert [r["factor"] for r in ev["ranking"]][
        0
    ] == "pretraining_data"  # the planted large shift ranks first
    assert {t["factor"] for t in ev["truth"]} == {"pretraining_data", "architecture", "size"}
    assert ev["timings_s"]["fit_s"] > 0
    html = (out / "report.html").read_text()
    assert "<title>SIMULATED DATA" in html
    assert not re.findall(r"""(?:src|href)=["'](?!data:|#)""", html)
    for name in ("curves", "gaps", "effects", "ranking", "rank", "ppc"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 5_000
    assert (out / "posterior" / "fit.json").exists() and (out / "simulated_table.parquet").exists()


def test_demo_is_resumable(demo, capsys) -> None:
    code0, out = demo
    before = (out / "posterior" / "posterior.nc").stat().st_mtime_ns
    code, stdout, _ = run(capsys, "demo", "--quick", "--simulated", "--out", out)
    assert code == code0
    assert "reusing" in stdout and "SIMULATED" in stdout
    assert (out / "posterior" / "posterior.nc").stat().st_mtime_ns == before


def test_demo_rejects_axes_without_table(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "demo", "--quick", "--out", tmp_path, "--x", "val/c4")
    assert code == 2 and "--table" in err
    code, _, err = run(capsys, "demo", "--quick", "--simulated", "--out", tmp_path, "--x", "val/c4")
    assert code == 2 and "--table" in err
    code, _, err = run(capsys, "demo", "--simulated", "--table", tmp_path / "t.parquet", "--out", tmp_path)
    assert code == 2 and "exclude" in err


def test_demo_default_is_the_bundled_mini_study(capsys, tmp_path) -> None:
    """The README's main command: the project's own measured table, its own question, labelled measured."""
    from bayes_l2l.demo import MINI_STUDY, MINI_STUDY_QUESTION

    assert MINI_STUDY.is_file(), "data/mini_study.parquet ships with the repository"
    code, stdout, _ = run(capsys, "demo", "--quick", "--out", tmp_path / "out")
    ev = json.loads((tmp_path / "out" / "evidence.json").read_text())
    assert code == (0 if ev["diagnostics_ok"] else 3)
    assert "mini_study.parquet" in stdout and "SIMULATED" not in stdout
    assert ev["data"].startswith("measured") and not ev.get("simulated")
    assert {f["factor"] for f in ev["factors"]} == set(MINI_STUDY_QUESTION["factors"])
    assert (ev["x"], ev["y"]) == (MINI_STUDY_QUESTION["x"], MINI_STUDY_QUESTION["y"])
    html = (tmp_path / "out" / "report.html").read_text()
    assert "SIMULATED" not in html and "mini_study.parquet" in html


# ------------------------------------------------------------------------------------------ compare
def test_compare_posterior_with_loo_caches_the_shared_fit(demo, capsys) -> None:
    _, out = demo
    post_dir = out / "posterior"
    code, stdout, _ = run(capsys, "compare", post_dir, "--factor", "pretraining_data", "--json")
    ev = json.loads(stdout)
    assert code == (
        0 if ev["diagnostics"]["ok"] else 3  # shared-fit problems only mark the elpd unreliable
    )
    assert {"factor", "base", "x", "y", "rope", "contrasts", "diagnostics"} <= set(ev)
    assert ev["factor"] == "pretraining_data" and ev["base"] == "FineWeb-Edu" and ev["rope"] == 0.02
    assert DIAG_KEYS <= set(ev["diagnostics"])
    (c4,) = ev["contrasts"]
    assert CONTRAST_KEYS <= set(c4)
    # a fit failing its diagnostics shows its numbers but decides nothing (the smoke run's short chains)
    assert c4["decision"] == ("shift" if ev["diagnostics"]["ok"] else "in doubt (sampler)")
    assert (c4["decision_if_converged"] or c4["decision"]) == "shift"
    assert len(c4["support"]) == 2 and len(c4["gap_hdi90"]) == 2
    # 4 runs, Pareto k up to 1.1 in the separate-curves fit: no elpd, and no shared fit run for it
    assert (
        c4["elpd_diff"] is None and c4["elpd_note"].startswith("not available") and "up to" in c4["elpd_note"]
    )
    assert c4["elpd_note"].startswith(ev["factors"][0]["shared_fit"]["not_fitted"])
    # K-fold by run cannot stand in: these conditions have one run each, and the note says so
    assert "K-fold by run needs at least 2 runs in every condition" in c4["elpd_note"]
    assert not (post_dir / "shared_pretraining_data").exists()
    # the shared fit and its cache on their own: fitted once, then read back
    shared, cached = shared_fit(load(post_dir), "pretraining_data", post_dir)
    assert not cached and shared.design.question.factors == ["architecture", "size"]
    assert sorted(shared.design.runs) == sorted(load(post_dir).design.runs)  # LOO aligns runs by name
    assert shared.settings["draws"] <= 500  # it serves the elpd only
    again, cached = shared_fit(load(post_dir), "pretraining_data", post_dir)
    assert cached and again.settings == shared.settings


def test_compare_several_factors_ranks_them(synthetic_dir, capsys) -> None:
    code, stdout, _ = run(
        capsys,
        "compare",
        synthetic_dir,
        "--factor",
        "architecture",
        "--factor",
        "pretraining_data",
        "--no-loo",
        "--json",
    )
    assert code == 0
    ev = json.loads(stdout)
    assert [r["factor"] for r in ev["ranking"]] == ["pretraining_data", "architecture"]
    assert "contrasts" not in ev and len(ev["factors"]) == 2
    assert all(c["elpd_diff"] is None for f in ev["factors"] for c in f["contrasts"])
    code, stdout, _ = run(capsys, "compare", synthetic_dir, "--factor", "pretraining_data", "--no-loo")
    assert code == 0 and "SIMULATED" in stdout and "shift" in stdout and "code" in stdout


def test_compare_table_reuses_a_matching_posterior_and_refuses_another(demo, capsys) -> None:
    _, out = demo
    table = out / "simulated_table.parquet"
    common = ["--x", "val/simulated", "--y", "test/simulated", "--chains", "2", "--draws", "150"]
    common += ["--warmup", "150", "--no-retry", "-o", out / "posterior", "--no-loo"]
    factors = ["--factor", "pretraining_data", "--factor", "architecture", "--factor", "size"]
    code, stdout, err = run(capsys, "compare", table, *factors, *common, "--min-fraction", "0.005", "--json")
    assert "reusing the posterior" in err and code in (0, 3)
    assert json.loads(stdout)["ranking"][0]["factor"] == "pretraining_data"
    code, _, err = run(capsys, "compare", table, *factors, *common)  # no early filter: another question
    assert code == 2 and "--overwrite" in err


def test_compare_table_fits_first(tmp_path, capsys) -> None:
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]},
        effects={"pretraining_data": {"code": {"E_y": 0.2}}},
        runs_per_condition=2,
        checkpoints_per_run=6,
        sizes=[160e6],
    )
    table, _ = simulate_table(spec, seed=5)
    path = table.save(tmp_path / "t.parquet")
    args = ["compare", path, "--x", "val/c4", "--y", "test/hellaswag", "--factor", "pretraining_data"]
    settings = ["--chains", "2", "--draws", "150", "--warmup", "150", "--no-retry"]
    code, stdout, err = run(capsys, *args, *settings, "--no-loo", "-o", tmp_path / "post", "--json")
    ev = json.loads(stdout)
    assert code == (0 if ev["diagnostics"]["ok"] else 3)
    assert ev["method"] == "nuts" and ev["n_points"] == 24 and "posterior written" in err
    assert "attempt 1:" in err  # the attempt's settings and outcome, on stderr
    c = ev["contrasts"][0]
    assert c["decision"] == ("shift" if ev["diagnostics"]["ok"] else "in doubt (sampler)")
    assert (c["decision_if_converged"] or c["decision"]) == "shift"
    assert (tmp_path / "post" / "fit.json").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "{tmp}/nope", "--factor", "a"], "no such posterior folder or loss table"),
        (["compare", "{post}", "--factor", "tokenizer", "--no-loo"], "not a factor of this posterior"),
        (["compare", "{post}", "--factor", "architecture", "--rope", "-1", "--no-loo"], "positive"),
        (["compare", "{post}", "--factor", "architecture", "--x", "val/c4"], "posterior folder"),
        (["compare", "{table}", "--factor", "pretraining_data"], "--x and --y"),
        (["test", "{post}", "{tmp}/missing.parquet"], "missing.parquet"),
        (["test", "{post}", "{table}", "--against", "pretraining_data=nope"], "no condition"),
        (["predict", "{post}"], "exactly one of"),
        (["predict", "{post}", "--x", "3,x"], "comma-separated numbers"),
        (["predict", "{post}", "--x", "3", "--level", "tokenizer=gpt2"], "tokenizer"),
        (["predict", "{post}", "--x", "3", "--run", "no_such_run"], "not in this fit"),
        (["report", "{post}", "-o", "{tmp}/r.html", "--compare", "tokenizer", "--no-loo"], "tokenizer"),
        (["demo", "--out", "{tmp}/o", "--table", "{tmp}/missing.parquet"], "missing.parquet"),
        (["demo", "--out", "{tmp}/o", "--where", "architecture=GPT"], "--table"),
        (["demo", "--out", "{table}"], "is a file"),
        (["predict", "{post}", "--x", "3,-1"], "losses are positive"),
        (["test", "{post}", "{other}"], "my-own-eval"),
        (["report", "{post}", "-o", "{tmp}", "--overwrite", "--no-loo"], "is a folder"),
        (f"fit {{table}} {AXES} -o {{table}}".split(), "is a file"),
        (f"fit {{table}} {AXES} -o {{tmp}}/p --chains 0".split(), "--chains"),
        (
            f"fit {{table}} {AXES} -o {{tmp}}/p --factor pretraining_data".split(),
            "one level in this selection (code)",
        ),
        (f"compare {{table}} {AXES} -o {{tmp}}/p --factor pretraining_data".split(), "has one level"),
    ],
)
def test_bad_input_exits_2_with_a_message(synthetic_dir, new_tables, tmp_path, capsys, args, needle) -> None:
    fmt = {
        "tmp": tmp_path,
        "post": synthetic_dir,
        "table": new_tables["code"],
        "other": new_tables["other_estimator"],
    }
    code, _, err = run(capsys, *[a.format(**fmt) for a in args])
    assert code == 2
    assert needle in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------ test
def test_new_checkpoints_of_a_shifted_recipe_are_a_shift(synthetic_dir, new_tables, capsys) -> None:
    code, stdout, _ = run(capsys, "test", synthetic_dir, new_tables["code"], "--json")
    assert code == 0
    res = json.loads(stdout)
    assert res["decision"] == "shift" and res["p_shift"] > 0.95
    assert res["against"] == "pretraining_data=web|architecture=llama"
    assert res["n_checkpoints"] == len(res["checkpoints"]) == 6
    assert {"checkpoint", "x", "y", "predicted", "predictive_sd", "z"} <= set(res["checkpoints"][0])
    assert {"gap_mean", "gap_hdi90", "rope", "diagnostics"} <= set(res)


def test_new_checkpoints_against_their_own_curve(synthetic_dir, new_tables, capsys) -> None:
    code, stdout, _ = run(
        capsys, "test", synthetic_dir, new_tables["code"], "--against", "pretraining_data=code", "--json"
    )
    assert code == 0
    res = json.loads(stdout)
    assert res["decision"] != "shift" and abs(res["gap_mean"]) < 0.05
    code, stdout, _ = run(capsys, "test", synthetic_dir, new_tables["base"])
    assert code == 0 and "per checkpoint" in stdout and "z" in stdout


# ------------------------------------------------------------------------------------------ predict
def test_predict_values_and_from_table(synthetic_dir, new_tables, capsys) -> None:
    code, stdout, _ = run(capsys, "predict", synthetic_dir, "--x", "3.5,4.0,9.0", "--json")
    assert code == 0
    res = json.loads(stdout)
    rows = res["predictions"]
    assert [r["x"] for r in rows] == [3.5, 4.0, 9.0]
    for r in rows:
        assert r["lo90"] <= r["lo50"] <= r["mean"] <= r["hi50"] <= r["hi90"]
    assert rows[2]["extrapolation"] is True and rows[0]["extrapolation"] is False
    code, stdout, _ = run(
        capsys,
        "predict",
        synthetic_dir,
        "--from-table",
        new_tables["code"],
        "--level",
        "pretraining_data=code",
    )
    assert code == 0 and "code_llama" in stdout and "90% PI" in stdout


def test_predict_gives_no_value_below_the_floor(synthetic_dir, capsys) -> None:
    post = load(synthetic_dir)
    ex = post.condition_params()["Ex"][:, 0]
    x_low, x_mixed = float(ex.min()) - 0.1, float(np.quantile(ex, 0.5))
    code, stdout, err = run(capsys, "predict", synthetic_dir, "--x", f"{x_low},{x_mixed},4.0", "--json")
    assert code == 0 and "RuntimeWarning" not in err
    low, mixed, fine = json.loads(stdout)["predictions"]
    assert low["p_below_floor"] == 1.0 and low["mean"] is None and low["hi90"] is None
    assert 0.4 < mixed["p_below_floor"] < 0.6 and mixed["mean"] is None
    assert fine["p_below_floor"] == 0.0 and fine["mean"] is not None
    code, stdout, _ = run(capsys, "predict", synthetic_dir, "--x", f"{x_low}")
    assert code == 0 and "the law gives no value" in stdout and "—" in stdout


def test_fit_refuses_a_folder_holding_posterior_file_names(new_tables, tmp_path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "design.json").write_text("my own notes")
    args = ["fit", new_tables["base"], "--x", "val/c4", "--y", "test/hellaswag", "-o", folder]
    code, _, err = run(capsys, *args)
    assert code == 2 and "design.json, which writing the posterior would replace" in err
    assert (folder / "design.json").read_text() == "my own notes"


def test_predict_further_checkpoints_of_a_fitted_run(synthetic_dir, capsys) -> None:
    post = load(synthetic_dir)
    run_name = post.design.offset_runs[0]
    assert run_name.startswith("web_llama")  # a run of the base condition, the default of a plain predict
    code, stdout, _ = run(capsys, "predict", synthetic_dir, "--x", "3.5", "--run", run_name, "--json")
    assert code == 0
    (row,) = json.loads(stdout)["predictions"]
    offset = float(post.draws("run_offset")[:, 0].mean())
    _, new = run(capsys, "predict", synthetic_dir, "--x", "3.5", "--json")[:2]
    (new_row,) = json.loads(new)["predictions"]
    # the run's own offset moves the mean, and knowing it narrows the interval
    assert row["mean"] == pytest.approx(new_row["mean"] + offset, abs=0.004)
    assert row["hi90"] - row["lo90"] < new_row["hi90"] - new_row["lo90"]
    code, _, err = run(
        capsys, "predict", synthetic_dir, "--x", "3.5", "--run", run_name, "--level", "pretraining_data=code"
    )
    assert code == 2 and "either --run or --level" in err


def test_failed_diagnostics_exit_3_after_printing(synthetic_dir, tmp_path, capsys) -> None:
    post = load(synthetic_dir)
    bad = replace(post, diagnostics={**post.diagnostics, "ok": False, "problems": ["R-hat 1.300 > 1.01 (K)"]})
    bad.save(tmp_path / "bad")
    code, stdout, err = run(capsys, "predict", tmp_path / "bad", "--x", "3.5", "--json")
    assert code == 3
    assert json.loads(stdout)["diagnostics"]["ok"] is False
    assert "R-hat 1.300" in err


# ------------------------------------------------------------------------------------------ report
def test_report_command(synthetic_dir, tmp_path, capsys) -> None:
    out = tmp_path / "r.html"
    code, stdout, _ = run(
        capsys, "report", synthetic_dir, "-o", out, "--figures", tmp_path / "figs", "--no-loo"
    )
    assert code == 0 and out.exists() and "report written" in stdout
    html = out.read_text()
    assert "pretraining_data" in html and "architecture" in html and "SIMULATED" in html
    assert not re.findall(r"""(?:src|href)=["'](?!data:|#)""", html)
    assert len(list((tmp_path / "figs").glob("*.png"))) == 6
    code, _, err = run(capsys, "report", synthetic_dir, "-o", out, "--no-loo")
    assert code == 2 and "--overwrite" in err


def test_rope_thresholds_give_decide_at_every_rope() -> None:
    import numpy as np

    from bayes_l2l.evidence import decide, rope_thresholds

    rng = np.random.default_rng(0)
    for loc, sd, n in [(0.05, 0.015, 4000), (0.0, 0.01, 4000), (-0.03, 0.02, 999), (0.004, 0.002, 20)]:
        mean_d = rng.normal(loc, sd, n)
        maxabs = np.abs(mean_d) + rng.exponential(0.005, n)
        mean_d[:3] = np.nan  # draws without a gap count as neither shift nor equivalence
        maxabs[:3] = np.nan
        shift_below, equiv_above = rope_thresholds(mean_d, maxabs)
        for rope in np.concatenate([np.linspace(1e-4, 0.1, 400), [shift_below, equiv_above]]):
            decision = decide(mean_d, maxabs, float(rope))[0]
            assert (decision == "shift") == (rope < shift_below)
            if decision != "shift":
                assert (decision == "no practical shift") == (rope > equiv_above)
