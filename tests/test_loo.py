"""Leave-one-run-out elpd: reported where PSIS is reliable, withheld (with the reason) where a Pareto k > 0.7."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import xarray as xr

from bayes_l2l.evidence import PARETO_K_MAX, loo_compare_runs, loo_runs, loo_unavailable


def _post(loglik: np.ndarray, runs: list[str], run_idx: np.ndarray) -> SimpleNamespace:
    tree = xr.DataTree.from_dict({"log_likelihood": xr.Dataset({"y": (("chain", "draw", "point"), loglik)})})
    return SimpleNamespace(dt=tree, design=SimpleNamespace(runs=runs, n_runs=len(runs), run_idx=run_idx))


def test_elpd_given_where_every_k_is_small_and_withheld_where_one_is_not() -> None:
    rng = np.random.default_rng(0)
    runs, run_idx = ["a", "b", "c", "d"], np.repeat(np.arange(4), 5)
    calm = -1.0 + 0.01 * rng.standard_normal((4, 500, 20))  # the likelihood barely varies: k near 0
    sep, one = _post(calm, runs, run_idx), _post(calm - 0.1, runs, run_idx)
    res = loo_compare_runs(sep, one)
    assert res["max_pareto_k"] <= PARETO_K_MAX
    assert res["elpd_diff"] > 0 and np.isfinite(res["elpd_se"]) and res["note"].startswith("PSIS-LOO over 4")
    wild = calm.copy()
    wild[:, :, 0] = -1.0 - 50 * rng.standard_exponential((4, 500))  # run a: a few draws dominate
    assert loo_runs(_post(wild, runs, run_idx))["pareto_k"][0] > PARETO_K_MAX
    res = loo_compare_runs(_post(wild, runs, run_idx), one)
    assert res["elpd_diff"] is None and res["elpd_se"] is None
    assert res["note"].startswith("not available") and "separate-curves fit: a" in res["note"]
    assert res["note"].endswith("which separate curves cannot predict)")  # K-fold's own note follows it
    assert loo_unavailable(np.array([0.1, 0.2]), ["a", "b"], "x") is None
