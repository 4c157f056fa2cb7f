"""The simulator: determinism, the table it writes, the truth it reports, and spec validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from bayes_l2l.contrasts import condition_labels
from bayes_l2l.errors import UserInputError
from bayes_l2l.jsonable import to_json
from bayes_l2l.laws import compute_loss, shifted_power_law
from bayes_l2l.simulate import (
    SimulationSpec,
    SimulationTruth,
    format_size,
    parse_size,
    read_truth,
    simulate_table,
)
from bayes_l2l.table import LossTable


@pytest.fixture(scope="module")
def default_sim() -> tuple[LossTable, SimulationTruth]:
    return simulate_table(SimulationSpec(), 0)


def test_same_seed_same_table_other_seed_other_values() -> None:
    a, ta = simulate_table(SimulationSpec(), 7)
    b, tb = simulate_table(SimulationSpec(), 7)
    pd.testing.assert_frame_equal(a.df, b.df)
    assert ta.to_dict() == tb.to_dict()
    c, _ = simulate_table(SimulationSpec(), 8)
    assert not np.allclose(a.df["value"].to_numpy(), c.df["value"].to_numpy())


def test_table_schema_and_identity(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    table, truth = default_sim
    spec = truth.spec
    assert table.metrics == sorted([spec.x_metric, spec.y_metric])
    assert set(table.df["estimator"]) == {"simulated"} and set(table.df["unit"]) == {"nats/token"}
    for factor in [*spec.factors, "seed"]:
        assert factor in table.factors
    ck = table.checkpoints()
    # 6 conditions (base + 2 data + 1 architecture + 2 sizes) x 2 seeds x 20 checkpoints
    assert table.df["run"].nunique() == 12 and len(ck) == 240
    assert set(ck["seed"]) == {"0", "1"}
    for _, run in ck.groupby("run"):
        steps = run["step"].to_numpy()
        assert np.all(np.diff(np.sort(steps)) > 0)
        np.testing.assert_allclose(run["tokens"], run["step"] * spec.tokens_per_step)
        assert (run["checkpoint"] == "step" + run["step"].astype(int).astype(str)).all()
        tokens = np.sort(run["tokens"].to_numpy())
        # geometric schedule: from ~0.2% of training to tokens_per_param * N
        assert tokens[-1] == pytest.approx(spec.tokens_per_param * run["params"].iloc[0], rel=0.01)
        assert tokens[0] / tokens[-1] == pytest.approx(spec.first_token_fraction, rel=0.2)
    assert set(ck["params"]) == {parse_size(s) for s in spec.factors["size"]}


def test_params_and_tokens_explain_x(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    table, truth = default_sim
    spec = truth.spec
    pts = truth.points.merge(table.checkpoints(), on=["run", "checkpoint"]).merge(
        truth.conditions[["condition", "E_x"]], on="condition"
    )
    expect = compute_loss(pts["params"], pts["tokens"], pts["E_x"], **spec.compute)
    np.testing.assert_allclose(pts["x_true"], expect, rtol=1e-12)
    noise = pts["x"] - pts["x_true"]
    assert abs(noise.mean()) < 3 * spec.x_noise_sd / math.sqrt(len(noise))
    assert noise.std() == pytest.approx(spec.x_noise_sd, rel=0.15)
    wide = table.wide()
    merged = wide.merge(truth.points, on=["run", "checkpoint"])
    np.testing.assert_allclose(merged[spec.x_metric], merged["x"])
    np.testing.assert_allclose(merged[spec.y_metric], merged["y"])


def test_y_is_curve_plus_offset_plus_early_plus_noise(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    _, truth = default_sim
    spec = truth.spec
    pts = truth.points.merge(truth.conditions, on="condition")
    curve = shifted_power_law(pts["x_true"], pts["K"], pts["kappa"], pts["E_x"], pts["E_y"])
    np.testing.assert_allclose(pts["curve"], curve)
    np.testing.assert_allclose(pts["y"], pts["curve"] + pts["offset"] + pts["early"] + pts["noise"])
    np.testing.assert_allclose(pts["early"], spec.early_amp * np.exp(-pts["index"] / spec.early_tau))
    first = pts[pts["index"] == 0]
    assert (first["early"] == spec.early_amp).all()
    offsets = pts.groupby("run")["offset"].nunique()
    assert (offsets == 1).all()
    assert set(truth.run_offsets) == set(truth.runs["run"])


def test_effects_applied_per_condition(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    _, truth = default_sim
    spec = truth.spec
    conds = truth.conditions.set_index("condition")
    base = conds.loc[truth.base_condition]
    assert base[["K", "kappa", "E_x", "E_y"]].to_dict() == pytest.approx(spec.base)
    code = conds.loc[truth.condition_row({"pretraining_data": "code"})["condition"]]
    eff = spec.effects["pretraining_data"]["code"]
    assert code["K"] == pytest.approx(spec.base["K"] * math.exp(eff["log_K"]))
    assert code["E_x"] == pytest.approx(spec.base["E_x"] + eff["E_x"])
    assert code["E_y"] == pytest.approx(spec.base["E_y"] + eff["E_y"])
    books = truth.condition_row({"pretraining_data": "books"})
    assert books["kappa"] == pytest.approx(spec.base["kappa"] * math.exp(0.1))


def test_one_at_a_time_and_factorial_designs() -> None:
    spec = SimulationSpec()
    conds = spec.condition_levels()
    assert len(conds) == 1 + 2 + 1 + 2
    base = conds[0]
    assert base == {f: levels[0] for f, levels in spec.factors.items()}
    for c in conds[1:]:
        assert sum(c[f] != base[f] for f in c) == 1
    fact = SimulationSpec(design="factorial", runs_per_condition=1, checkpoints_per_run=5)
    assert len(fact.condition_levels()) == 3 * 2 * 3
    table, truth = simulate_table(fact, 0)
    assert len(truth.conditions) == 18 and table.df["run"].nunique() == 18


def test_condition_labels_match_contrasts(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    table, truth = default_sim
    runs = truth.runs.merge(table.checkpoints().drop_duplicates("run"), on="run", suffixes=("", "_t"))
    labels = condition_labels(runs, list(truth.spec.factors))
    assert (labels.astype(str) == runs["condition"]).all()


def test_gaps_null_factor_constant_shift_and_support(default_sim: tuple[LossTable, SimulationTruth]) -> None:
    _, truth = default_sim
    # size has no effect: the true gap is exactly 0 over the common support
    size = truth.true_gap_summary("size", "160M")
    assert size["overlap"] and size["mean_gap"] == 0.0 and size["max_abs_gap"] == 0.0
    # architecture only shifts E_y by 0.02 nats: a constant gap
    arch = truth.true_gap_summary("architecture", "gptneox")
    assert arch["mean_gap"] == pytest.approx(0.02) and arch["max_abs_gap"] == pytest.approx(0.02)
    # support = intersection of the observed x ranges; mean = uniform average of the gap there
    code = truth.true_gap_summary("pretraining_data", "code")
    lvl, base = truth.condition_row({"pretraining_data": "code"}), truth.condition_row({})
    assert code["x_lo"] == max(lvl["min_x"], base["min_x"]) and code["x_hi"] == min(
        lvl["max_x"], base["max_x"]
    )
    grid = np.linspace(code["x_lo"], code["x_hi"], 10001)
    gap = truth.gap({"pretraining_data": "code"}, {}, grid)
    assert code["mean_gap"] == pytest.approx(gap.mean(), abs=1e-4)
    assert code["max_abs_gap"] == pytest.approx(np.abs(gap).max(), abs=1e-4)
    assert code["mean_gap"] > 0.15  # a large planted shift
    frame = truth.gap_summaries()
    assert len(frame) == 5 and set(frame["factor"]) == set(truth.spec.factors)


def test_gap_summary_against_another_base_condition() -> None:
    spec = SimulationSpec(design="factorial", runs_per_condition=1, checkpoints_per_run=6)
    _, truth = simulate_table(spec, 1)
    out = truth.true_gap_summary("architecture", "gptneox", base_condition={"pretraining_data": "code"})
    assert (
        "pretraining_data=code" in out["base_condition"] and "architecture=gptneox" in out["level_condition"]
    )
    assert out["mean_gap"] == pytest.approx(0.02)
    truth_ota = simulate_table(SimulationSpec(checkpoints_per_run=4), 0)[1]
    with pytest.raises(UserInputError, match="not in this simulation"):
        truth_ota.true_gap_summary("architecture", "gptneox", base_condition={"pretraining_data": "code"})


def test_sizes_without_size_factor_and_student_t_noise() -> None:
    spec = SimulationSpec(
        factors={"pretraining_data": ["web", "code"]},
        effects={"pretraining_data": {"code": {"E_y": 0.1}}},
        sizes=[160e6, 1e9],
        runs_per_condition=2,
        checkpoints_per_run=8,
        noise="student_t",
        noise_df=3.0,
    )
    table, truth = simulate_table(spec, 2)
    runs = truth.runs
    assert len(runs) == 2 * 2 * 2
    for _, by_cond in runs.groupby("condition"):
        assert sorted(by_cond["params"].unique()) == [160e6, 1e9]
    assert "size" not in table.df.columns
    assert any("160M" in r for r in table.runs)


def test_truth_round_trip_and_json(tmp_path, default_sim: tuple[LossTable, SimulationTruth]) -> None:
    _, truth = default_sim
    text = to_json(truth.to_dict())
    data = json.loads(text)
    assert data["base"] == truth.spec.base and len(data["conditions"]) == 6
    path = truth.save(tmp_path / "t.truth.json")
    back = read_truth(path)
    pd.testing.assert_frame_equal(back.gap_summaries(), truth.gap_summaries())
    assert back.run_offsets == pytest.approx(truth.run_offsets)
    with pytest.raises(UserInputError, match="exists already"):
        truth.save(path)


def test_spec_yaml_round_trip(tmp_path) -> None:
    spec = SimulationSpec(runs_per_condition=3, noise="student_t")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))
    assert SimulationSpec.from_yaml(path) == spec
    partial = tmp_path / "partial.yaml"
    partial.write_text("checkpoints_per_run: 12\nfactors:\n  pretraining_data: [web, code]\neffects: {}\n")
    loaded = SimulationSpec.from_yaml(partial)
    assert loaded.checkpoints_per_run == 12 and loaded.factors == {"pretraining_data": ["web", "code"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nonsense": 1}, "unknown field"),
        ({"effects": {"pretraining_data": {"web": {"E_y": 0.1}}}}, "base level has no effect"),
        ({"effects": {"pretraining_data": {"code": {"E_z": 0.1}}}}, "use one of"),
        ({"effects": {"optimizer": {"adam": {"E_y": 0.1}}}}, "no such factor"),
        ({"effects": {"pretraining_data": {"wiki": {"E_y": 0.1}}}}, "not a level"),
        ({"factors": {"Pretraining Data": ["a", "b"]}, "effects": {}}, "snake case"),
        ({"factors": {"seed": ["a", "b"]}, "effects": {}}, "reserved"),
        ({"factors": {"size": ["big", "small"]}, "effects": {}}, "not a parameter count"),
        ({"base": {"K": 0.3, "kappa": 1.0, "E_x": 1.0}}, "exactly"),
        ({"design": "latin"}, "design"),
        ({"checkpoints_per_run": 1}, "checkpoints_per_run"),
        ({"noise": "cauchy"}, "noise"),
        ({"x_metric": "C4 loss"}, "metric id"),
        ({"first_token_fraction": 1.5}, "first_token_fraction"),
    ],
)
def test_spec_validation_errors(change: dict, message: str) -> None:
    base = SimulationSpec().to_dict()
    base.update(change)
    with pytest.raises(UserInputError, match=message):
        SimulationSpec.from_dict(base)


def test_impossible_condition_is_refused() -> None:
    spec = SimulationSpec(effects={"pretraining_data": {"code": {"E_y": -2.0}}})
    with pytest.raises(UserInputError, match="E_y = -0.7 < 0"):
        simulate_table(spec, 0)


def test_size_labels() -> None:
    assert parse_size("160M") == 1.6e8 and parse_size("1.4B") == 1.4e9 and parse_size("7e8") == 7e8
    assert format_size(1.6e8) == "160M" and format_size(1.4e9) == "1.4B"
