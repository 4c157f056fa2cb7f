"""The Python API (`import bayes_l2l as bl`, docs/api.md): every function and result class on a small simulated
table, the same content as the CLI's --json, errors as exceptions (no printing, no sys.exit), and the quickstart
example end to end on the paper's table."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

import bayes_l2l as bl
from bayes_l2l.cli import main
from bayes_l2l.simulate import SimulationSpec, simulate_table

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[1]
FAST = {"chains": 2, "draws": 200, "warmup": 200, "retry": False}


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> Path:
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]},
        effects={"pretraining_data": {"code": {"E_y": 0.15}}},
        runs_per_condition=2,
        checkpoints_per_run=10,
        sizes=[1e8],
    )
    table, _ = simulate_table(spec, 3)
    path = tmp_path_factory.mktemp("api") / "t.parquet"
    table.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def post(table_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("api_post") / "post"
    return bl.fit(
        table_path, x="val/c4", y="test/hellaswag", factors="pretraining_data", output=folder, **FAST
    )


def test_import_is_light_and_exports_the_api() -> None:
    code = "import sys, bayes_l2l as bl; print('jax' in sys.modules); print(callable(bl.fit))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]  # the API loads on first use; the CLI's start stays without jax
    import types

    import bayes_l2l.api  # noqa: F401 - with every submodule it imports: none may shadow an API name

    for name in ("import_table", "read_table", "fit", "load", "baseline", "design_of", "Fit", "Evidence"):
        assert name in bl.__all__ and not isinstance(getattr(bl, name), types.ModuleType), name


def test_fit_returns_a_fit_with_diagnostics_and_a_datatree(post, table_path) -> None:
    assert isinstance(post, bl.Fit) and post.folder is not None and (post.folder / "fit.json").exists()
    assert {"ok", "max_rhat", "min_ess_bulk", "divergences", "attempts"} <= set(post.diagnostics)
    assert len(post.attempts) == 1 and post.attempts[0]["draws"] == 200
    assert "posterior" in post.datatree.children and "log_likelihood" in post.datatree.children
    summ = post.summary()
    assert {"mean", "lo", "hi", "r_hat"} <= set(summ.columns) and "K[pretraining_data=code]" in summ.index
    assert "<table" in post._repr_html_() and "val/c4" in repr(post)
    assert post.to_dict()["question"]["factors"] == ["pretraining_data"]
    # the same request into the same folder is reused, not refitted
    again = bl.fit(
        table_path,
        x="val/c4",
        y="test/hellaswag",
        factors=["pretraining_data"],
        output=post.folder,
        **FAST,
    )
    assert again.posterior.wall_time_s == post.posterior.wall_time_s


def test_compare_matches_the_cli_json(post, capsys) -> None:
    ev = post.compare("pretraining_data", loo=False)
    df = ev.to_dataframe()
    assert (
        len(df) == 1
        and df["level"][0] != df["base"][0]
        and {"gap_mean", "gap_lo90", "gap_hi90", "decision"} <= set(df.columns)
    )
    assert isinstance(ev.plot(), matplotlib.figure.Figure) and "<table" in ev._repr_html_()
    capsys.readouterr()
    assert main(["compare", str(post.folder), "--factor", "pretraining_data", "--no-loo", "--json"]) in (0, 3)
    cli = json.loads(capsys.readouterr().out)
    api = json.loads(json.dumps(ev.to_dict(), default=float))
    assert cli["contrasts"][0]["gap_mean"] == pytest.approx(api["contrasts"][0]["gap_mean"])
    assert cli["contrasts"][0]["decision"] == api["contrasts"][0]["decision"]
    assert set(cli) == set(api)


def test_predict_test_plot_report_save_load(post, table_path, tmp_path) -> None:
    pred = post.predict(x=[3.0, 3.2], level={"pretraining_data": "code"})
    frame = pred.to_dataframe()
    assert len(frame) == 2 and {"mean", "lo90", "hi90", "extrapolation"} <= set(frame.columns)
    assert pred.to_dict()["predictions"][0]["x"] == 3.0 and "<table" in pred._repr_html_()
    by_table = post.predict(table=table_path).to_dataframe()
    assert by_table["checkpoint"].str.contains("@").all()
    table = bl.read_table(table_path)
    res = post.test(table.select(where={"pretraining_data": "code"}), against={"pretraining_data": "web"})
    assert res.decision in ("shift", "undecided", "no practical shift", "in doubt (sampler)")
    assert len(res.to_dataframe()) == 20 and res.to_dict()["against"] == "pretraining_data=web"
    assert isinstance(post.plot_curves(), matplotlib.figure.Figure)
    html = post.report(tmp_path / "r.html", compare=["pretraining_data"], loo=False)
    assert html.exists() and "pretraining_data" in html.read_text()
    post.save(tmp_path / "copy")
    again = bl.load(tmp_path / "copy")
    assert again.question.to_dict() == post.question.to_dict() and again.folder == tmp_path / "copy"


def test_baseline_and_design(table_path) -> None:
    res = bl.baseline(table_path, x="val/c4", y="test/hellaswag", by="pretraining_data")
    df = res.to_dataframe()
    assert list(df["group"]) == ["code", "web"] and "two_stage_Ex" in df.columns
    assert res.to_dict()["by"] == "pretraining_data" and "<table" in res._repr_html_()
    d = bl.design_of(table_path, "val/c4", "test/hellaswag", "pretraining_data")
    assert d.n_conditions == 2 and len(d.points) == 40


def test_errors_are_exceptions_with_the_cli_messages(post, table_path, capsys) -> None:
    with pytest.raises(bl.UserInputError, match="unknown option"):
        bl.fit(table_path, x="val/c4", y="test/hellaswag", sampler="fast")
    with pytest.raises(bl.UserInputError, match="not a factor of this posterior"):
        post.compare("tokenizer")
    with pytest.raises(bl.UserInputError, match="exactly one of"):
        post.predict()
    with pytest.raises(bl.UserInputError, match="no such file"):
        bl.read_table(table_path.parent / "absent.parquet")
    assert capsys.readouterr().out == ""  # the library printed nothing


def test_failed_diagnostics_do_not_raise_until_asked(table_path) -> None:
    fit = bl.fit(
        table_path,
        x="val/c4",
        y="test/hellaswag",
        factors=["pretraining_data"],
        chains=1,
        draws=50,
        warmup=50,
        retry=False,
    )
    assert not fit.ok and fit.diagnostics["problems"]
    ev = fit.compare("pretraining_data", loo=False)
    assert set(ev.to_dataframe()["decision"]) == {"in doubt (sampler)"} and ev.problems
    with pytest.raises(bl.DiagnosticsError, match="chains 2 or more"):
        fit.raise_for_diagnostics()


def test_default_folders_are_keyed_by_the_question() -> None:
    from bayes_l2l.comparisons import question_folder
    from bayes_l2l.design import Question

    a = question_folder(
        Question(
            x="val/fineweb_edu", y="val/c4", factors=["pretraining_data"], where={"architecture": "Llama"}
        )
    )
    b = question_folder(
        Question(x="val/fineweb_edu", y="val/c4", factors=["architecture"], where={"tokenizer": "gpt-neox"})
    )
    assert a != b and a.parent == b.parent == Path("out")
    assert a.name.startswith("val-c4_vs_val-fineweb_edu_by_pretraining_data_where_architecture=Llama-")


@pytest.mark.slow
def test_quickstart_example_runs_the_papers_question(tmp_path, monkeypatch) -> None:
    from conftest import shared_path

    shared_path("data", "llm_line", "latest_pm_hf.csv")
    monkeypatch.setattr(sys, "argv", ["quickstart.py", str(tmp_path / "qs")])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "examples" / "quickstart.py"), run_name="__main__")
    assert exit_.value.code == 0
    for name in ("report.html", "curves.png", "gaps.png", "post/fit.json"):
        assert (tmp_path / "qs" / name).exists(), name
    assert json.loads((tmp_path / "qs" / "post" / "fit.json").read_text())["diagnostics"]["ok"]
