"""Issue 25: a unit per axis, common support that supports a decision, confounding said aloud, predictions
beside the observed y, floors below zero, and bad questions refused before the work.

Each test names what failed before: one unit for both axes (a ladder's bits/byte task losses could not be
fitted against nats/token validation losses), a "shift" decided on 0.001 nats of overlap, size compared
with its learning rate confounded and nothing said.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayes_l2l as bl
from bayes_l2l.cli import main
from bayes_l2l.design import Question, build_design
from bayes_l2l.errors import UserInputError
from bayes_l2l.support import (
    common_support,
    confounders,
    pooled_factors,
    reconcile,
    too_little_support,
)
from bayes_l2l.table import LossTable
from bayes_l2l.units import choose_unit, conversion_factor, default_rope

LADDER = Path(__file__).parents[1] / "examples" / "ladder"
AXES = {"x": "val/c4", "y": "test/hellaswag"}


@pytest.fixture(scope="module")
def ladder() -> LossTable:
    """The ladder fixture: x in nats/token, y in bits/byte, size confounded with learning rate."""
    return bl.import_table(
        str(LADDER / "runs" / "*" / "*.csv"), format="generic", mapping=LADDER / "mapping.yaml"
    )


def _curve_table(ranges: dict[str, tuple[float, float]], shift: float = 0.0, runs: int = 2) -> LossTable:
    """Conditions of factor 'data' on the law y = 0.5 (x - 1.5)^1.1 + 0.6, each over its own x range."""
    rng = np.random.default_rng(0)
    rows = []
    for level, (lo, hi) in ranges.items():
        for r in range(runs):
            for k, x in enumerate(np.linspace(hi, lo, 8) + rng.normal(0, 0.002, 8)):
                y = 0.5 * (x - 1.5) ** 1.1 + 0.6 + (shift if level != "A" else 0.0) + rng.normal(0, 0.003)
                for metric, value in (("val/c4", x), ("test/hellaswag", y)):
                    rows.append(
                        {
                            "run": f"{level}-{r}",
                            "checkpoint": f"s{k}",
                            "step": k,
                            "tokens": (k + 1) * 1e8,
                            "params": 1.6e8,
                            "data": level,
                            "metric": metric,
                            "kind": "validation" if metric.startswith("val") else "test",
                            "value": float(value),
                            "unit": "nats/token",
                            "estimator": "e",
                        }
                    )
    return LossTable.from_frame(pd.DataFrame(rows), "curves.csv")


# ------------------------------------------------------------------------------------------ units
def test_each_axis_keeps_the_unit_the_table_stores_it_in(ladder):
    # before: Question.unit = "nats/token" for both axes -> "no nats/token values for the y metric"
    d = build_design(ladder, Question(**AXES, factors=["pretraining_data"]))
    assert (d.question.x_unit, d.question.y_unit) == ("nats/token", "bits/byte")
    assert set(d.points["y_unit"]) == {"bits/byte"} and set(d.points["x_unit"]) == {"nats/token"}
    assert d.question.units_label() == "x in nats/token, y in bits/byte"


def test_a_unit_the_table_lacks_is_refused_and_converted_only_exactly(ladder):
    with pytest.raises(
        UserInputError, match=r"no nats/token values; it is stored in bits/byte.*no exact conversion"
    ):
        build_design(ladder, Question(**AXES, y_unit="nats/token"))
    with pytest.raises(UserInputError, match="--convert-units"):
        build_design(ladder, Question(**AXES, y_unit="nats/byte"))
    plain = build_design(ladder, Question(**AXES))
    nats = build_design(ladder, Question(**AXES, y_unit="nats/byte", convert_units=True))
    assert nats.question.y_unit == "nats/byte"
    np.testing.assert_allclose(np.sort(nats.y), np.sort(plain.y) * math.log(2))


def test_a_metric_in_two_units_takes_the_preferred_one_or_the_one_asked_for():
    assert choose_unit(
        ["bits/byte", "nats/token"], None, metric="m", axis="y", convert=False, source="t"
    ) == (
        "nats/token",
        "nats/token",
    )
    assert (
        choose_unit(
            ["bits/byte", "nats/token"], "bits/byte", metric="m", axis="y", convert=False, source="t"
        )[0]
        == "bits/byte"
    )
    with pytest.raises(UserInputError, match="not a loss unit"):
        choose_unit(["nats/token"], "nats", metric="m", axis="x", convert=False, source="t")


def test_default_rope_per_unit_and_exact_conversions():
    assert default_rope("nats/token") == 0.02
    assert default_rope("bits/token") == pytest.approx(0.029)
    assert default_rope("nats/byte") == 0.005
    assert default_rope("bits/byte") == pytest.approx(0.0072)
    assert conversion_factor("nats/byte", "bits/byte") == pytest.approx(1 / math.log(2))
    assert conversion_factor("nats/token", "bits/byte") is None


# ------------------------------------------------------------------------------------------ support
def test_support_minimum_counts_and_width():
    points = pd.DataFrame(
        {"cond_idx": [0] * 6 + [1] * 6, "x": [3, 3.2, 3.4, 3.6, 3.8, 4.0, 3.99, 4.2, 4.4, 4.6, 4.8, 5]}
    )
    info = common_support(points, 0, 1, [3.99, 4.0])
    assert info["inside_level"] == 1 and info["inside_base"] == 1 and info["fraction"] < 0.1
    assert info["n_level"] == 2 and info["n_base"] == 2  # plus the nearest checkpoint outside
    assert too_little_support(info) == "the overlap is 0.01 wide, 1% of the narrower x range (minimum 10%)"
    assert "minimum 3 each" in too_little_support(info, min_points=3)
    wide = common_support(points, 0, 1, [3.0, 4.0])
    assert too_little_support(wide) is None
    assert (
        too_little_support(common_support(points, 0, 1, [4.0, 3.99]))
        == "the two conditions' x ranges do not overlap"
    )


def test_barely_overlapping_conditions_are_not_identifiable_not_shift():
    # before: a gap measured on 0.02 nats of overlap was decided ("shift" for a planted 0.1 offset)
    table = _curve_table({"A": (3.0, 4.0), "B": (3.98, 5.0)}, shift=0.1)
    fit = bl.fit(table, "val/c4", "test/hellaswag", "data", method="approx")
    (c,) = fit.compare("data", loo=False).contrasts["data"]
    assert c.decision == "not identifiable: too little common support"
    assert c.decision_if_supported in ("shift", "undecided", "no practical shift")
    assert "too little common support" in c.note and c.common_support["fraction"] < 0.1
    loose = fit.compare("data", loo=False, min_support_points=1, min_support_fraction=0.0).contrasts["data"][
        0
    ]
    assert not loose.decision.startswith("not identifiable")


def test_test_against_the_curve_needs_new_checkpoints_inside_its_x_range(tmp_path):
    fit = bl.fit(
        _curve_table({"A": (3.0, 4.0), "B": (3.0, 4.0)}), "val/c4", "test/hellaswag", "data", method="approx"
    )
    far = _curve_table({"A": (5.0, 6.0)})
    res = fit.test(far)
    assert res.result["decision"] == "not identifiable: too little common support"
    assert res.result["inside_support"] == 0 and "extrapolation" in res.result["note"]
    near = fit.test(_curve_table({"A": (3.2, 3.8)}))
    assert not near.result["decision"].startswith("not identifiable")


# ------------------------------------------------------------------------------------------ confounding
def test_confounders_are_named_per_contrast_and_constants_held_fixed():
    points = pd.DataFrame(
        {
            "run": ["a", "b", "c", "d"],
            "cond_idx": [0, 0, 1, 1],
            "lr": [3e-3, 3e-3, 1e-3, 1e-3],
            "bs": [256, 512, 256, 512],
            "ctx": ["2k"] * 4,
        }
    )
    found, fixed = confounders(points, points["cond_idx"] == 0, points["cond_idx"] == 1, ["lr", "bs", "ctx"])
    assert [c["column"] for c in found] == ["lr"] and found[0]["degree"] == "fully"
    assert fixed == {"ctx": "2k"}


def test_compare_names_the_confounders_and_the_pooled_factors(ladder, tmp_path):
    # before: compare --factor size reported matched_on {} and no warning although each size had its own
    # learning rate and batch size
    fit = bl.fit(ladder, **AXES, factors="size", method="approx")
    warnings = fit.design.warnings
    assert any(w.startswith("size is confounded with") and "learning_rate (fully)" in w for w in warnings)
    assert any(w.startswith("pooled over pretraining_data") for w in warnings)
    ev = fit.compare("size", loo=False)
    for c in ev.contrasts["size"]:
        cols = {d["column"]: d["degree"] for d in c.confounded_with}
        assert cols["learning_rate"] == "fully" and cols["batch_size"] == "fully"
        assert "confounded with" in c.note and c.unit == "bits/byte"
    payload = ev.to_dict()
    assert payload["y_unit"] == "bits/byte" and payload["x_unit"] == "nats/token"
    assert payload["rope"] == pytest.approx(0.0072)
    assert payload["contrasts"][0]["confounded_with"] and payload["design_warnings"]
    assert payload["factors"][0]["predictive"]["scope"].startswith("per factor")
    html = fit.report(tmp_path / "r.html", evidence=ev).read_text()
    assert "learning_rate (fully" in html and "bits/byte" in html and "pooled over" in html


def test_pooled_factor_is_one_that_varies_inside_a_condition():
    points = pd.DataFrame(
        {"run": ["a", "b", "c"], "cond_idx": [0, 0, 1], "arch": ["x", "y", "x"], "seed": [1, 2, 3]}
    )
    assert "pooled over arch" in pooled_factors(points, ["arch", "seed"], [])
    assert pooled_factors(points.assign(arch=["x", "x", "y"]), ["arch"], []) is None


# ------------------------------------------------------------------------------------------ reconciling
@pytest.mark.parametrize(
    ("decision", "elpd", "expected"),
    [
        ("no practical shift", (30.0, 5.0), "a real, practically negligible difference"),
        ("shift", (30.0, 5.0), "a real, practically relevant shift"),
        ("shift", (-30.0, 5.0), "not borne out out of sample"),
        ("undecided", (3.0, 5.0), "does not tell separate curves from one shared curve"),
        ("shift", (None, None), "was not run"),
        ("not identifiable: too little common support", (30.0, 5.0), "no decision"),
    ],
)
def test_one_statement_reconciles_decision_and_prediction(decision, elpd, expected):
    assert expected in reconcile(decision, *elpd, None)


# ------------------------------------------------------------------------------------------ presentation
def test_predict_from_a_table_shows_observed_y_and_standardised_residual():
    table = _curve_table({"A": (3.0, 4.0), "B": (3.0, 4.0)}, shift=0.1)
    fit = bl.fit(table, "val/c4", "test/hellaswag", "data", method="approx")
    frame = fit.predict(table=table.where(data="A")).frame
    assert {"y_observed", "residual_z"} <= set(frame.columns)
    assert frame["y_observed"].notna().all() and np.isfinite(frame["residual_z"]).all()
    assert frame["residual_z"].abs().median() < 3
    # a table without y still predicts (observed y left empty)
    only_x = LossTable.from_frame(table.df[table.df["metric"] == "val/c4"], "x_only")
    assert fit.predict(table=only_x).frame["y_observed"].isna().all()


def test_a_floor_below_zero_is_not_physical_whatever_its_contraction():
    from bayes_l2l.diagnostics import identification

    rng = np.random.default_rng(0)
    draws = {"Ey": rng.normal(-0.3, 0.01, (2, 200, 1)), "Ex": rng.normal(1.5, 0.01, (2, 200, 1))}
    prior = {"Ey": rng.normal(0.5, 1.0, (1, 400, 1)), "Ex": rng.normal(1.5, 1.0, (1, 400, 1))}
    dt = az.from_dict({"posterior": draws, "prior": prior}, dims={"Ey": ["condition"], "Ex": ["condition"]},
                      coords={"condition": ["all"]})  # fmt: skip
    flags = identification(types.SimpleNamespace(dt=dt))["identified"]
    assert flags["Ey[all]"] == "not physical" and flags["Ex[all]"] == "identified"


# ------------------------------------------------------------------------------------------ bad input
def test_same_metric_on_both_axes_and_constant_y_are_refused(ladder, capsys):
    with pytest.raises(UserInputError, match="--x and --y are both val/c4"):
        build_design(ladder, Question(x="val/c4", y="val/c4"))
    flat = ladder.df.copy()
    flat.loc[flat["metric"] == "test/hellaswag", "value"] = 0.9
    with pytest.raises(UserInputError, match="is constant in condition"):
        build_design(LossTable.from_frame(flat, "flat.csv"), Question(**AXES))


def test_unwritable_output_paths_are_refused_before_the_fit(ladder, tmp_path, capsys):
    table = ladder.save(tmp_path / "ladder.parquet")
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    assert (
        main(["fit", str(table), "--x", "val/c4", "--y", "test/hellaswag", "-o", str(blocker / "post")]) == 2
    )
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "attempt 1" not in err  # refused before any sampling
    assert not (blocker.parent / "post").exists()


@pytest.mark.slow
def test_ladder_from_files_to_decisions_with_one_mapping_and_one_compare(tmp_path, capsys):
    """Issue 25's 'done when': one CSV per run, x in nats/token, y in bits/byte, size confounded with the
    learning rate; the default NUTS fit, no sampler options."""
    out = tmp_path / "ladder.parquet"
    glob = str(LADDER / "runs" / "*" / "*.csv")
    assert main(["import", "-f", "generic", glob, "-m", str(LADDER / "mapping.yaml"), "-o", str(out)]) == 0
    capsys.readouterr()
    code = main(["compare", str(out), "--x", "val/c4", "--y", "test/hellaswag", "--factor", "pretraining_data",
                 "--factor", "size", "-o", str(tmp_path / "post"), "--json", "--kfold-budget", "0"])  # fmt: skip
    assert code == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["y_unit"] == "bits/byte" and ev["x_unit"] == "nats/token"
    by_factor = {f["factor"]: f["contrasts"] for f in ev["factors"]}
    (data,) = by_factor["pretraining_data"]
    lo, hi = data["gap_hdi90"]
    assert data["decision"] == "shift" and lo < 0.05 < hi  # planted +0.05 bits/byte for DCLM
    for c in by_factor["size"]:
        assert {d["column"] for d in c["confounded_with"]} >= {"learning_rate", "batch_size"}


# ------------------------------------------------------------------------------------------ K-fold by run
@pytest.mark.slow
def test_kfold_by_run_favours_separate_curves_for_a_real_shift_only():
    from bayes_l2l.comparisons import fit_like
    from bayes_l2l.kfold import fold_assignment, kfold_compare

    results = {}
    for shift in (0.0, 0.15):
        fit = bl.fit(_curve_table({"A": (3.0, 4.0), "B": (3.0, 4.0)}, shift=shift, runs=3), "val/c4",
                     "test/hellaswag", "data")  # fmt: skip
        folds, why = fold_assignment(fit.design)
        assert why is None and len(set(folds.values())) == 3
        # every fold keeps a run of each condition
        for k in set(folds.values()):
            kept = {r.split("-")[0] for r, f in folds.items() if f != k}
            assert kept == {"A", "B"}
        results[shift] = kfold_compare(fit.posterior, "data", budget_s=600, fit=fit_like)
    assert results[0.15]["elpd_diff"] > 2 * results[0.15]["elpd_se"]
    assert (
        results[0.0]["elpd_diff"] < results[0.15]["elpd_diff"]
        and "K-fold by run (3 folds" in results[0.0]["note"]
    )


def test_kfold_by_run_says_why_it_cannot_run():
    from bayes_l2l.kfold import fold_assignment, kfold_compare

    fit = bl.fit(_curve_table({"A": (3.0, 4.0), "B": (3.0, 4.0)}, runs=1), "val/c4", "test/hellaswag", "data",
                 method="approx")  # fmt: skip
    assert "at least 2 runs in every condition" in fold_assignment(fit.design)[1]
    two = bl.fit(_curve_table({"A": (3.0, 4.0), "B": (3.0, 4.0)}, runs=2), "val/c4", "test/hellaswag", "data",
                 method="approx")  # fmt: skip
    res = kfold_compare(two.posterior, "data", budget_s=0.0, fit=lambda p, d: None)
    assert res["elpd_diff"] is None and "over the budget of 0 s" in res["note"]


def test_a_factor_empty_on_some_rows_of_a_run_is_a_clear_error_not_a_type_error():
    rows = [
        {"run": "r", "checkpoint": f"c{i}", "metric": "val/c4", "kind": "validation", "value": 3.0 - i / 10,
         "unit": "nats/token", "estimator": "e", "corpus": "web" if i == 0 else np.nan}
        for i in range(3)
    ]  # fmt: skip
    with pytest.raises(UserInputError, match=r"several values of factor 'corpus' \(\(empty\), web\).*fill"):
        LossTable.from_frame(pd.DataFrame(rows), "t.csv")
