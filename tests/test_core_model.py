"""Design, model and inference: shapes, filters, bad input, determinism, save/load, CLI fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_l2l.cli import main
from bayes_l2l.design import Question, build_design
from bayes_l2l.errors import UserInputError
from bayes_l2l.evidence import compare_factor
from bayes_l2l.infer import Posterior, fit, load, paper_mode_config, summary_table
from bayes_l2l.simulate import SimulationSpec, simulate_table
from bayes_l2l.table import LossTable

SMALL = SimulationSpec(
    factors={"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]},
    effects={"pretraining_data": {"code": {"E_y": 0.1, "log_K": 0.1}}},
    runs_per_condition=2,
    checkpoints_per_run=12,
    sizes=[160e6, 410e6],
)
FAST = {"chains": 2, "draws": 250, "warmup": 250}


@pytest.fixture(scope="module")
def small_table():
    return simulate_table(SMALL, seed=3)


@pytest.fixture(scope="module")
def small_post(small_table):
    table, _ = small_table
    design = build_design(
        table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data", "architecture"])
    )
    # 500 warm-up steps: at 250 this fit's R-hat is 1.15 with jax 0.12.1 (1.04 at 500), a short-chain artefact
    return fit(design, seed=1, **{**FAST, "warmup": 500})


def test_design_indexes_conditions_runs_and_effects(small_table) -> None:
    table, truth = small_table
    d = build_design(
        table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data", "architecture"])
    )
    assert d.n_conditions == 3  # one factor at a time: base, code, gptneox
    assert d.factor_levels == {"pretraining_data": ["web", "code"], "architecture": ["llama", "gptneox"]}
    assert d.effect_matrix.shape == (3, 2)
    assert d.effect_matrix.sum(axis=0).tolist() == [1.0, 1.0]
    assert d.effect_matrix[0].sum() == 0  # the base condition comes first
    assert len(d.points) == len(table.df) // 2
    assert (d.cond_min_x < d.x_ref + 1e-12).all()
    assert set(d.runs) == set(table.df["run"])


def test_design_filters_and_weights(small_table) -> None:
    table, _ = small_table
    full = build_design(table, Question(x="val/c4", y="test/hellaswag"))
    cut = float(np.quantile(full.x, 0.8))
    d = build_design(table, Question(x="val/c4", y="test/hellaswag", max_x=cut))
    assert d.x.max() <= cut and d.dropped[0]["count"] == int((full.x > cut).sum())
    w = build_design(table, Question(x="val/c4", y="test/hellaswag", early_fraction=0.1, early_weight=0.3))
    assert set(np.unique(w.weight)) == {0.3, 1.0}
    f = build_design(table, Question(x="val/c4", y="test/hellaswag", min_fraction=0.05))
    assert len(f.points) < len(full.points)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (Question(x="val/c4", y="test/nope"), "test/nope"),
        (Question(x="val/c4", y="test/hellaswag", factors=["colour"]), "colour"),
        (
            Question(x="val/c4", y="test/hellaswag", factors=["architecture"], base={"architecture": "rnn"}),
            "rnn",
        ),
        (Question(x="val/c4", y="test/hellaswag", where={"architecture": "rnn"}), "no rows match"),
        (Question(x="val/c4", y="test/hellaswag", max_x=0.1), "no checkpoint"),
    ],
)
def test_design_bad_questions(small_table, question, message) -> None:
    with pytest.raises(UserInputError, match=message):
        build_design(small_table[0], question)


def test_design_refuses_one_point_per_condition(small_table) -> None:
    table, _ = small_table
    df = table.df
    keep = ~((df["pretraining_data"] == "code") & (df["step"] > df["step"].min()))
    from bayes_l2l.table import LossTable

    thin = LossTable.from_frame(df[keep], source="thin.parquet")
    with pytest.raises(UserInputError, match="fewer than 3 checkpoints"):
        build_design(thin, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))


def test_fit_converges_and_reports_everything(small_post) -> None:
    post = small_post
    dg = post.diagnostics
    assert dg["max_rhat"] < 1.05 and dg["divergences"] <= 2
    for key in ("min_ess_bulk", "min_ess_tail", "min_bfmi", "tree_depth_saturation", "ok", "problems"):
        assert key in dg
    summ = summary_table(post)
    assert {"mean", "lo", "hi", "r_hat", "ess_bulk", "identified"} <= set(summ.columns)
    assert set(summ["identified"].dropna()) <= {"identified", "weak", "not identified", "fixed"}
    assert "log_likelihood" in post.dt.children and "prior" in post.dt.children
    k = post.condition_params()["K"]
    assert k.shape == (2 * 250, post.design.n_conditions) and (k > 0).all()
    ex = post.condition_params()["Ex"]
    assert (ex < post.design.cond_min_x[None, :]).all()  # the floor stays below every condition's data


def test_same_seed_same_numbers(small_table) -> None:
    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    a = fit(design, seed=5, chains=2, draws=60, warmup=60)
    b = fit(design, seed=5, chains=2, draws=60, warmup=60)
    np.testing.assert_array_equal(a.draws("K"), b.draws("K"))


def test_save_load_round_trip(small_post, tmp_path) -> None:
    folder = small_post.save(tmp_path / "post")
    back = Posterior.load(folder)
    np.testing.assert_allclose(back.draws("Ey"), small_post.draws("Ey"))
    assert back.design.factor_levels == small_post.design.factor_levels
    assert back.diagnostics == json.loads(json.dumps(small_post.diagnostics, default=float))
    with pytest.raises(UserInputError, match="holds a posterior already"):
        small_post.save(folder)
    with pytest.raises(UserInputError, match="not a posterior folder"):
        Posterior.load(tmp_path)


def test_paper_mode_fixes_e(small_table) -> None:
    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    config, _ = paper_mode_config(design)
    post = fit(design, config, seed=0, chains=2, draws=100, warmup=100)
    np.testing.assert_allclose(post.draws("Ex")[0], config.fixed_Ex)
    assert "d_logK" in post.dt["posterior"]


def test_cli_fit_writes_posterior_and_json(small_table, tmp_path, capsys) -> None:
    table, _ = small_table
    path = table.to_parquet(tmp_path / "t.parquet")
    out = tmp_path / "post"
    args = [
        "fit",
        str(path),
        "--x",
        "val/c4",
        "--y",
        "test/hellaswag",
        "--factor",
        "pretraining_data",
        "--chains",
        "2",
        "--draws",
        "150",
        "--warmup",
        "150",
        "--no-retry",
        "-o",
        str(out),
        "--json",
    ]
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 3)  # 3 = diagnostics failed (short chains); the posterior is written either way
    assert (out / "fit.json").exists() and report["n_points"] == len(table.df) // 2
    assert {"diagnostics", "parameters", "prior_check", "dropped"} <= set(report)
    assert report["prior_check"]["observed_in_prior_90"] > 0.5
    assert report["settings"]["mass"] == "laplace"  # the default sampler, recorded
    assert main(args) == code  # the same request again: the saved posterior is reused, not refitted
    assert "reusing the posterior" in capsys.readouterr().err
    other = [a if a != "150" else "160" for a in args]
    assert main(other) == 2  # another request: refuses to replace the posterior
    assert "holds a posterior of another question, data or options" in capsys.readouterr().err


def test_cli_fit_diagonal_mass_is_used_and_recorded(small_table, tmp_path, capsys, monkeypatch) -> None:
    import bayes_l2l.infer as infer_module

    seen: list[bool] = []
    real_nuts = infer_module.NUTS

    def recording_nuts(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        seen.append(kw["dense_mass"])
        return real_nuts(*a, **kw)

    monkeypatch.setattr(infer_module, "NUTS", recording_nuts)
    table, _ = small_table
    path = table.to_parquet(tmp_path / "t.parquet")
    args = ["fit", str(path), "--x", "val/c4", "--y", "test/hellaswag", "--factor", "pretraining_data"]
    args += ["--chains", "2", "--draws", "100", "--warmup", "100", "--no-retry", "--json"]
    assert main([*args, "--mass", "full", "-o", str(tmp_path / "bad")]) == 2
    assert "--mass 'full': use laplace, dense, diag" in capsys.readouterr().err
    assert main([*args, "--mass", "diag", "-o", str(tmp_path / "post")]) in (0, 3)
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["mass"] == "diag"
    fit = json.loads((tmp_path / "post" / "fit.json").read_text())
    assert fit["settings"]["mass"] == "diag" and seen == [False]


def test_cli_fit_takes_the_shape_and_run_offset_options(small_table, tmp_path, capsys) -> None:
    table, _ = small_table
    path = table.to_parquet(tmp_path / "t.parquet")
    args = ["fit", str(path), "--x", "val/c4", "--y", "test/hellaswag", "--factor", "pretraining_data"]
    args += ["--no-retry", "--chains", "1", "--draws", "30", "--warmup", "30"]
    assert main([*args, "--shape", "cubic", "-o", str(tmp_path / "bad")]) == 2
    assert "--shape 'cubic': use auto, logkappa or curvature" in capsys.readouterr().err
    assert main([*args, "--run-offsets", "both", "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "post"
    capsys.readouterr()
    # one chain: R-hat cannot be computed, which is said (exit 3), not printed as a crash or hidden
    assert main([*args, "--shape", "curvature", "--run-offsets", "centred", "-o", str(out)]) == 3
    captured = capsys.readouterr()
    assert "max R-hat n/a" in captured.out and "R-hat needs at least 2 chains" in captured.err
    assert "--chains 2 or more" in captured.err and "--mass dense" not in captured.err
    config = json.loads((out / "fit.json").read_text())["config"]
    assert config["shape"] == "curvature" and config["run_offsets"] == "centred"
    post = load(out)
    assert "base_q" in post.dt["posterior"] and "run_offset" in post.dt["posterior"]
    assert "z_run" not in post.dt["posterior"]  # centred: the offsets are the latent sites
    # the approximate path takes its Gaussian in split coordinates whatever --run-offsets says, and says so
    args[-6:] = ["--method", "approx", "--draws", "200"]
    assert main([*args, "--run-offsets", "centred", "-o", str(tmp_path / "approx")]) == 0
    assert json.loads((tmp_path / "approx" / "fit.json").read_text())["config"]["run_offsets"] == "split"
    assert "split run offsets" in load(tmp_path / "approx").diagnostics["note"]


def test_laplace_whitened_nuts_samples_the_same_posterior(small_table, tmp_path) -> None:
    """--mass laplace changes the sampler's coordinates only: same posterior as dense NUTS, full record."""
    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    kw = {"chains": 2, "draws": 400, "warmup": 400, "seed": 1}
    dense = fit(design, **kw, mass="dense")
    white = fit(design, **kw)  # the default mass
    assert white.settings["mass"] == "laplace" and white.method == "nuts"
    dg = white.diagnostics
    assert dg["max_rhat"] is not None and isinstance(dg["divergences"], int) and dg["min_bfmi"] is not None
    assert {"n_steps", "tree_depth", "energy", "lp"} <= set(white.dt["sample_stats"].data_vars)
    assert white.dt["log_likelihood"]["y"].shape == (2, 400, len(design.points))
    for var in ("d_h", "d_logs", "K", "Ey", "sigma"):
        a, b = dense.draws(var), white.draws(var)
        sd = np.maximum(a.std(axis=0), 1e-12)
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) / sd < 0.5), var
        assert np.all(np.abs(np.log(b.std(axis=0) / sd)) < np.log(1.5)), var
    gap_dense = compare_factor(dense, "pretraining_data")[0].gap_mean
    gap_white = compare_factor(white, "pretraining_data")[0].gap_mean
    assert abs(gap_dense - gap_white) < 0.01
    white.save(tmp_path / "white")
    assert load(tmp_path / "white").settings["mass"] == "laplace"


def test_centred_and_split_run_offsets_are_the_same_prior_written_directly(small_table) -> None:
    from numpyro import handlers

    from bayes_l2l.model import ModelConfig, ModelData, l2l_model

    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    sites = {}
    for par in ("centred", "noncentred"):
        config = ModelConfig(run_offsets=par)
        data = ModelData.from_design(design, config)
        with handlers.seed(rng_seed=0):
            sites[par] = handlers.trace(l2l_model).get_trace(data, config)
    assert sites["centred"]["run_offset"]["type"] == "sample" and "z_run" not in sites["centred"]
    assert sites["noncentred"]["run_offset"]["type"] == "deterministic"
    # the same Normal(0, sigma_run) prior: the model's log joint at offsets b (centred) equals the one at
    # z = b / sigma_run (non-centred) minus the Jacobian n log sigma_run
    from numpyro.infer.util import log_density

    nc = {
        k: v["value"]
        for k, v in sites["noncentred"].items()
        if v["type"] == "sample" and not v["is_observed"]
    }
    sigma_run, b = 0.02, np.linspace(-0.03, 0.03, len(design.offset_runs))
    nc.update(sigma_run=sigma_run, z_run=b / sigma_run)
    c = {k: v for k, v in nc.items() if k != "z_run"} | {"run_offset": b}
    lp = {}
    for par, params in (("centred", c), ("noncentred", nc)):
        config = ModelConfig(run_offsets=par)
        lp[par], _ = log_density(l2l_model, (ModelData.from_design(design, config), config), {}, params)
    assert np.isclose(float(lp["centred"]), float(lp["noncentred"]) - b.size * np.log(sigma_run))
    # split: the same offsets in an orthonormal basis, each condition's mean non-centred (g of them)
    config = ModelConfig(run_offsets="split")
    data = ModelData.from_design(design, config)
    basis, g = np.asarray(data.run_basis), data.n_run_groups
    np.testing.assert_allclose(basis.T @ basis, np.eye(b.size), atol=1e-12)
    assert g == design.n_conditions
    coef = basis.T @ b
    split = c | {"z_run_mean": coef[:g] / sigma_run, "run_contrast": coef[g:]}
    del split["run_offset"]
    lp_split, tr = log_density(l2l_model, (data, config), {}, split)
    assert np.isclose(float(lp_split), float(lp["centred"]) + g * np.log(sigma_run))
    np.testing.assert_allclose(tr["run_offset"]["value"], b, atol=1e-12)
    with pytest.raises(UserInputError, match="run_offsets"):
        ModelConfig(run_offsets="partial")


def test_curvature_shape_replaces_log_kappa_by_the_identified_curvature(small_table) -> None:
    from numpyro import handlers

    from bayes_l2l.model import (
        CURVATURE_LINEAR_MARGIN,
        SOFTPLUS_SHARPNESS,
        ModelConfig,
        ModelData,
        l2l_model,
    )

    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    config = ModelConfig(shape="curvature")
    assert config.params == ("h", "logs", "q", "u")
    data = ModelData.from_design(design, config)
    with handlers.seed(rng_seed=0):
        tr = handlers.trace(l2l_model).get_trace(data, config)
    assert {"base_q", "d_q"} <= set(tr) and "d_logkappa" not in tr
    q = np.asarray(tr["base_q"]["value"]) + np.asarray(data.X) @ np.asarray(tr["d_q"]["value"])
    g_ref = design.x_ref - np.asarray(tr["Ex"]["value"])
    t = 1.0 + q * g_ref
    floor = config.kappa_floor
    expected = floor + np.log1p(np.exp(SOFTPLUS_SHARPNESS * (t - floor))) / SOFTPLUS_SHARPNESS
    np.testing.assert_allclose(np.asarray(tr["kappa"]["value"]), expected, rtol=1e-10)
    assert floor == 0.25 and np.all(np.asarray(tr["kappa"]["value"]) > floor)
    linear = t > floor + CURVATURE_LINEAR_MARGIN
    assert CURVATURE_LINEAR_MARGIN == 0.25
    np.testing.assert_allclose(expected[linear], t[linear], atol=1e-3)
    # the floor holds where 1 + q g is far below it (the kappa -> 0 limit short runs ran into without it)
    from bayes_l2l.model import curvature_kappa

    assert float(curvature_kappa(np.float64(-5.0), np.float64(1.0), floor)) == pytest.approx(floor)
    # a fit with it gives positive kappa; configs saved before the option still load
    post = fit(design, config, method="approx", seed=0)
    assert "d_q" in post.dt["posterior"] and (post.draws("kappa") > 0).all()
    assert ModelConfig.from_dict(config.to_dict()).shape == "curvature"
    old = ModelConfig().to_dict()
    for d in (old["effect_scale"], old["base_sd"]):
        d.pop("q")
    old.pop("shape")
    old.pop("kappa_floor")
    assert ModelConfig.from_dict(old).shape == "logkappa" and ModelConfig.from_dict(old).base_sd["q"] == 1.0
    old_curvature = {**old, "shape": "curvature"}
    assert ModelConfig.from_dict(old_curvature).kappa_floor == 0.0  # fitted before the floor existed
    assert ModelConfig.from_dict(config.to_dict()).kappa_floor == 0.25
    with pytest.raises(UserInputError, match="shape"):
        ModelConfig(shape="kappa")


def test_cli_fit_bad_input_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"run": ["a"], "value": [1.0]}).to_csv(bad, index=False)
    code = main(["fit", str(bad), "--x", "val/c4", "--y", "test/x", "-o", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "missing required column" in err and "Traceback" not in err


def test_an_evaluation_store_folder_reads_as_a_table(tmp_path) -> None:
    from bayes_l2l.errors import LossTableError
    from bayes_l2l.table import LossTable

    with pytest.raises(LossTableError, match="is a folder"):
        LossTable.read(tmp_path)
    from bayes_l2l.evaluate.store import ResultStore

    store = ResultStore(tmp_path / "store", create=True)
    ns = store.namespace("ns-x", {"fingerprint": "x", "summary": "test"})
    ns.write(
        {
            "run": "r1",
            "checkpoint": "step100",
            "metric": "val/c4",
            "step": 100,
            "tokens": 1e6,
            "params": 1e6,
            "factors": {"architecture": "llama"},
            "kind": "validation",
            "estimator": "test",
            "rows": [{"unit": "nats/token", "value": 3.5, "n": 10, "stderr": 0.01}],
        }
    )
    table = LossTable.read(store.root)
    assert table.df["value"].tolist() == [3.5]


def test_compute_component_and_user_priors() -> None:
    from dataclasses import replace

    from bayes_l2l.model import ModelConfig

    spec = replace(SMALL, sizes=[160e6, 410e6, 1e9], runs_per_condition=1)
    table, _ = simulate_table(spec, seed=0)
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    post = fit(design, ModelConfig(prior_Ex=(1.8, 0.2)), seed=0, chains=2, draws=80, warmup=80)
    assert post.settings["compute_component"] is True
    assert {"cl_alpha", "cl_beta", "cl_sigma_x"} <= set(post.dt["posterior"].data_vars)
    assert "x_obs" in post.dt["log_likelihood"]
    dense = fit(design, ModelConfig(prior_Ex=(1.8, 0.2)), seed=0, chains=2, draws=30, warmup=30, mass="dense")
    for group in ("posterior", "prior"):
        # the Laplace-whitened path assembles its DataTree itself: the same record as az.from_numpyro
        assert set(post.dt[group].data_vars) == set(dense.dt[group].data_vars), group
    for group in ("prior_predictive", "log_likelihood", "observed_data"):
        assert {"y", "x_obs"} <= set(post.dt[group].data_vars), group
    # prior predictive draws are draws (drawn in numpy from each prior draw's likelihood), not the data
    for site, observed in (("y", design.y), ("x_obs", design.x)):
        pp = post.dt["prior_predictive"][site].values[0]
        assert np.isfinite(pp).all() and pp.shape == (2000, observed.size), site
        assert (pp.std(axis=0) > 1e-3).all() and not np.allclose(pp[0], observed), site
    off = fit(design, ModelConfig(use_compute=False), seed=0, chains=2, draws=30, warmup=30)
    assert off.settings["compute_component"] is False and "cl_alpha" not in off.dt["posterior"]


def test_approximate_path_runs_and_says_so(small_table, tmp_path) -> None:
    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    post = fit(design, method="approx", seed=0, draws=200)
    assert post.method == "approx" and post.diagnostics["max_rhat"] is None
    assert "--method nuts" in post.diagnostics["note"]
    assert np.isfinite(post.draws("K")).all()
    # the Laplace approximation finds the planted data shift close to the truth, and round-trips
    _, truth = small_table
    (contrast,) = compare_factor(post, "pretraining_data")
    true_gap = truth.true_gap_summary("pretraining_data", contrast.level)["mean_gap"]
    assert abs(contrast.gap_mean - true_gap) < 0.05
    assert post.dt.attrs["laplace_converged"] == 1
    # the prior draws, made in a background thread beside the mode search, are the foreground's draws
    from bayes_l2l import infer
    from bayes_l2l.model import ModelData

    assert post.config.run_offsets == "split"  # the approximate path's coordinates (infer.APPROX_RUN_OFFSETS)
    data = ModelData.from_design(design, post.config)
    foreground = infer._prior_job(data, post.config, seed=1)()
    for site in ("K", "sigma_run", "y"):
        np.testing.assert_array_equal(
            post.dt["prior" if site != "y" else "prior_predictive"][site].values[0],
            foreground[site],
            err_msg=site,
        )
    post.save(tmp_path / "approx")
    assert load(tmp_path / "approx").method == "approx"


def test_approximate_path_finds_sigma_run_where_nuts_does(small_post) -> None:
    # In non-centred coordinates the joint mode put sigma_run at 2.1x the NUTS median on this table (0.053
    # against 0.026) and the height effects' sds 1.8x too wide; the split coordinates do not bias it
    # (benchmarks/RESULTS.md, "The approximate path's coordinates").
    approx = fit(small_post.design, method="approx", seed=0)
    nuts_median = np.median(small_post.draws("sigma_run"))
    assert abs(np.median(approx.draws("sigma_run")) / nuts_median - 1.0) < 0.15
    np.testing.assert_allclose(approx.draws("d_h").std(0), small_post.draws("d_h").std(0), rtol=0.2)


def test_passes_over_draws_batch_and_pad_without_changing_numbers(small_table, monkeypatch) -> None:
    import jax

    from bayes_l2l import infer
    from bayes_l2l.model import ModelConfig, ModelData

    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    config = ModelConfig()
    data = ModelData.from_design(design, config)
    whole = infer._prior_job(data, config, seed=3, n=50)()
    # 7 draws per batch: 8 batches, the last padded with copies of the last draw (and the copies dropped)
    from bayes_l2l import replay

    monkeypatch.setattr(replay, "REPLAY_ELEMENTS", 7 * design.y.size)
    batched = infer._prior_job(data, config, seed=3, n=50)()
    assert set(whole) == set(batched) and {"y", "base_h", "K"} <= set(whole)
    for k in whole:
        assert whole[k].shape == batched[k].shape and whole[k].shape[0] == 50, k
        np.testing.assert_allclose(whole[k], batched[k], rtol=1e-6, atol=1e-9, err_msg=k)
    # the prior draws are draws: distinct across draws, and y varies around each draw's curve
    assert np.unique(whole["base_h"]).size == 50 and (whole["y"].std(axis=0) > 1e-3).all()
    structure = infer._model_structure(data, config)
    latent = {k: jax.numpy.asarray(whole[k]) for k in structure.shapes}
    det, ll, params = infer._replayer(data, config, structure)(latent)
    np.testing.assert_allclose(det["K"], whole["K"], rtol=1e-6)
    assert ll["y"].shape == (50, design.y.size) and np.isfinite(ll["y"]).all()
    assert params["y"][0].shape == (50, design.y.size)


def test_prior_draws_follow_the_same_prior_as_numpyro_predictive(small_table) -> None:
    import jax
    from numpyro.infer import Predictive
    from scipy.stats import ks_2samp

    from bayes_l2l import infer
    from bayes_l2l.model import ModelConfig, ModelData, l2l_model

    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    config = ModelConfig()
    data = ModelData.from_design(design, config)
    ours = infer._prior_job(data, config, seed=5, n=3000)()
    theirs = Predictive(l2l_model, num_samples=3000)(jax.random.PRNGKey(11), data, config)
    for site in ("base_h", "base_u", "sigma", "sigma_run", "nu", "K", "Ex"):
        a, b = (
            np.asarray(ours[site]).reshape(3000, -1)[:, 0],
            np.asarray(theirs[site]).reshape(3000, -1)[:, 0],
        )
        assert ks_2samp(a, b).pvalue > 1e-3, site


def test_gamma_shape_two_is_gamma_2_in_density_and_draws() -> None:
    import jax
    import numpyro.distributions as dist
    from scipy import stats

    from bayes_l2l.model import GammaShapeTwo

    ours, ref = GammaShapeTwo(0.1), dist.Gamma(2.0, 0.1)
    at = np.array([0.5, 3.0, 20.0, 90.0])
    np.testing.assert_allclose(np.asarray(ours.log_prob(at)), np.asarray(ref.log_prob(at)), rtol=1e-12)
    draws = np.asarray(ours.sample(jax.random.PRNGKey(0), (20_000,)))
    assert draws.shape == (20_000,) and (draws > 0).all()
    assert stats.kstest(draws, stats.gamma(a=2.0, scale=10.0).cdf).pvalue > 1e-3


def test_a_saved_fit_is_reused_only_for_the_same_model(small_post, small_table) -> None:
    from dataclasses import replace

    from bayes_l2l.comparisons import same_fit
    from bayes_l2l.model import ModelConfig

    settings = {k: small_post.settings[k] for k in ("chains", "draws", "warmup", "seed")}
    design = small_post.design
    assert same_fit(small_post, design, "nuts", settings)  # the default model
    assert same_fit(small_post, design, "nuts", settings, ModelConfig())
    assert not same_fit(small_post, design, "nuts", settings, ModelConfig(shape="curvature"))
    assert not same_fit(small_post, design, "nuts", settings, ModelConfig(run_offsets="centred"))
    # the approximate path records the run offsets it used: still the same (default) model
    approx = fit(design, method="approx", seed=1)
    assert approx.config.run_offsets == "split"
    assert same_fit(approx, design, "approx", {"seed": 1}, ModelConfig())
    assert not same_fit(approx, design, "approx", {"seed": 1}, replace(ModelConfig(), noise_scale=0.2))
    # fresh arrays of a fit are read-only views, whatever the number of replay batches
    assert not small_post.dt["posterior"]["K"].values.flags.writeable
    with pytest.raises(UserInputError, match="kappa_floor"):
        ModelConfig(kappa_floor=-0.1)


def test_prior_draws_wait_for_the_mode_and_never_hang_a_failed_fit(small_table, monkeypatch) -> None:
    from bayes_l2l import infer

    table, _ = small_table
    design = build_design(table, Question(x="val/c4", y="test/hellaswag", factors=["pretraining_data"]))
    started = []

    class Recorded(infer._InBackground):
        def __init__(self, work) -> None:  # noqa: ANN001
            super().__init__(work)
            started.append(self)

    def broken_start(*args, **kwargs):
        raise RuntimeError("start failed")

    from bayes_l2l import approximation

    monkeypatch.setattr(approximation, "_InBackground", Recorded)
    monkeypatch.setattr(approximation, "_baseline_init", broken_start)
    with pytest.raises(RuntimeError, match="start failed"):
        fit(design, method="approx", seed=0)
    # the background prior job was started, then released and abandoned: it returns without drawing
    assert len(started) == 1
    assert started[0]._future.result(timeout=120) == {}
    # a fit's own arrays are read-only copies, latent sites (identity transforms) included
    monkeypatch.undo()
    post = fit(design, method="approx", seed=0)
    for site in ("base_h", "d_h", "sigma", "K"):
        assert not post.dt["posterior"][site].values.flags.writeable, site


def test_compute_component_is_left_off_where_tokens_are_a_fixed_multiple_of_params() -> None:
    """Final models at one tokens-per-parameter ratio: log D is a linear function of log N, the compute law's
    N and D terms cannot be told apart, so 'auto' leaves the component off (an explicit 'on' keeps it)."""
    from bayes_l2l.model import ModelConfig, compute_collinear, compute_enabled

    spec = SimulationSpec(
        factors={}, effects={}, runs_per_condition=1, checkpoints_per_run=4, sizes=[2e7, 1e8, 5e8, 2e9]
    )
    table, _ = simulate_table(spec, 0)
    q = Question(x=spec.x_metric, y=spec.y_metric, factors=[])
    over_training = build_design(table, q)  # checkpoints: D grows within each run, N fixed
    assert not compute_collinear(over_training) and compute_enabled(over_training, ModelConfig())
    ck = table.checkpoints()
    last = ck.loc[ck.groupby("run")["step"].idxmax(), ["run", "checkpoint"]]
    finals = build_design(LossTable.from_frame(table.df.merge(last, on=["run", "checkpoint"])), q)
    assert compute_collinear(finals) and not compute_enabled(finals, ModelConfig())
    assert compute_enabled(finals, ModelConfig(use_compute=True))
