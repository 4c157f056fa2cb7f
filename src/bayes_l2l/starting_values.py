"""Where the sampler and the mode search start: per-condition least-squares fits of the law (the point-fit
comparators), regressed on the effect design."""

from __future__ import annotations

import numpy as np

from bayes_l2l.design import Design
from bayes_l2l.model import CURVATURE_LINEAR_MARGIN, ModelConfig

BASELINE_INIT_STARTS = 3
"""Least-squares starts per condition for the sampler's and the mode search's starting values: 8 and 3 gave the
same starts to within 0.0007 on the paper's tables, Gemstones and the speed tables, in 0.3 s instead of 0.75 s at
6,000 checkpoints (benchmarks/RESULTS.md, fixed costs V)."""


def baseline_init(design: Design, config: ModelConfig) -> dict[str, np.ndarray]:
    """Starting values from per-condition least-squares fits, regressed on the effect design."""
    rows = []
    x_ref = design.x_ref
    kappa_lo = 0.1
    if config.shape == "curvature":  # start where kappa = 1 + q g, above the floor's flat part
        kappa_lo = max(kappa_lo, config.kappa_floor + CURVATURE_LINEAR_MARGIN)
    for c in range(design.n_conditions):
        sel = design.cond_idx == c
        x, y = design.x[sel], design.y[sel]
        try:
            from bayes_l2l.point_fits import free_fit

            fit = free_fit(x, y, n_starts=BASELINE_INIT_STARTS, seed=0)
            p = {k.replace("_", ""): float(v) for k, v in fit.params.items()}
            k, kappa, ex, ey = p["K"], p["kappa"], p["Ex"], p["Ey"]
        except Exception:  # noqa: BLE001 - a failed comparator fit only costs a worse start
            k, kappa, ex, ey = float(np.ptp(y) or 0.1), 1.0, x.min() - 0.5, y.min() - 0.1
        kappa = float(np.clip(kappa, kappa_lo, 8.0))
        if config.paper_mode:
            ex, ey = config.fixed_Ex[c], config.fixed_Ey[c]
            ok = (y > ey) & (x > ex)
            if ok.sum() >= 2:
                kappa_ls, logk_ls = np.polyfit(np.log(x[ok] - ex), np.log(y[ok] - ey), 1)
                k, kappa = float(np.exp(logk_ls)), float(np.clip(kappa_ls, 0.1, 8.0))
            rows.append([np.log(np.clip(k, 1e-3, 1e3)), np.log(kappa)])
            continue
        gap = float(np.clip(design.cond_min_x[c] - ex, 0.05, 5.0))
        g_ref = x_ref - (design.cond_min_x[c] - gap)
        height = k * g_ref**kappa + ey
        slope = max(k * kappa * g_ref ** (kappa - 1.0), 1e-3)
        shape = (kappa - 1.0) / g_ref if config.shape == "curvature" else np.log(kappa)
        rows.append([height, np.log(slope), shape, np.log(gap)])
    per_cond = np.asarray(rows)
    mat = np.column_stack([np.ones(design.n_conditions), design.effect_matrix])
    coef, *_ = np.linalg.lstsq(mat, per_cond, rcond=None)
    init: dict[str, np.ndarray] = {}
    for j, p in enumerate(config.params):
        init[f"base_{p}"] = np.asarray(coef[0, j])
        eff = coef[1:, j]
        if eff.size and config.effect_prior == "normal":
            init[f"d_{p}"] = eff
        elif eff.size:
            tau = np.full(max(len(design.factor_levels), 1), config.effect_scale[p] * 0.5)
            for fi in range(tau.size):
                sel = design.effect_factor_idx == fi
                if sel.any():
                    tau[fi] = max(tau[fi], float(np.abs(eff[sel]).max()))
            init[f"tau_{p}"] = tau
            init[f"z_{p}"] = np.clip(eff / tau[design.effect_factor_idx], -3, 3)
    init["sigma_run"] = np.asarray(config.run_sd_scale * 0.5)
    if design.offset_runs:
        init["z_run"] = np.zeros(len(design.offset_runs))
        init["run_offset"] = np.zeros(len(design.offset_runs))
        init["run_offset_decentered"] = np.zeros(len(design.offset_runs))  # run_offsets="mixed"
        n_groups = np.unique(design.offset_run_cond_idx).size  # as ModelData.n_run_groups
        init["z_run_mean"] = np.zeros(n_groups)  # run_offsets="split": one mean per condition, then contrasts
        init["run_contrast"] = np.zeros(len(design.offset_runs) - n_groups)
    init["sigma"] = np.asarray(max(float(np.std(design.y)) * 0.05, 0.005))
    if config.nu is None:
        init["nu"] = np.asarray(10.0)
    return init
