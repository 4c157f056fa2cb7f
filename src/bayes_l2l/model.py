"""The hierarchical loss-to-loss model, as a plain NumPyro function of a :class:`~bayes_l2l.design.Design`.

For condition c (one combination of factor levels), run r and checkpoint i:

    y_i = K_c * (x_i - Ex_c) ** kappa_c + Ey_c + b_r + noise_i

Each condition's curve is parametrised by four nonlinear parameters, each a base value plus one effect per
non-base level of each factor (brms style: one linear predictor per nonlinear parameter, X_c = indicators
of condition c's non-base levels):

    h_c         = base_h        + X_c . d_h         height of the curve at the reference x_ref (nats)
    log s_c     = base_logs     + X_c . d_logs      log slope dy/dx at x_ref
    log kappa_c = base_logkappa + X_c . d_logkappa
    u_c         = base_u        + X_c . d_u,        Ex_c = min_x_c - exp(u_c)   (keeps Ex_c < min x_c)

and K_c = s_c g_c^(1 - kappa_c) / kappa_c, Ey_c = h_c - s_c g_c / kappa_c with g_c = x_ref - Ex_c. This is the
same law as the (log K, log kappa, Ex, Ey) form, but its parameters are the ones the data identify (height
and slope where the conditions have data), which removes the K-Ey-Ex ridge that makes NUTS saturate its
tree depth in the naive form (docs/priors.md has the measurements). Δ log K, Δ log kappa, Δ Ex and Δ Ey of
every contrast are reported as derived quantities. Effects have zero-centred Normal priors (shrinkage
towards "this factor does not move this parameter"); ``effect_prior='hierarchical'`` instead learns one
scale per (parameter, factor). b_r ~ Normal(0, sigma_run) are run offsets (checkpoints of one run share
them). The noise is Student-t with learned degrees of freedom (robust to early checkpoints that deviate
from the law), and points can be down-weighted (early checkpoints).

Identification of E comes only from stated information: pooling across conditions that share effects, runs
of several sizes, the optional joint compute-to-loss component (x_i ~ Ex_c + ((A/N)^(alpha/beta) + B/D)^beta)
when N and D are known, user priors on E, or paper mode (Ex, Ey fixed from the two-stage fit; then the
linear predictors are on log K and log kappa directly).
Every prior and its reason is in docs/priors.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.reparam import LocScaleReparam

from bayes_l2l.design import Design
from bayes_l2l.measurement import check_mode, choose, independent_variances, known_scale

PARAMS: tuple[str, ...] = ("h", "logs", "logkappa", "u")
"""Latent scales of the four nonlinear parameters: h = curve height at x_ref (nats), logs = log slope
dy/dx at x_ref, logkappa = log kappa, u = log(min_x_c - Ex_c) (log nats). K and Ey follow from them."""
PAPER_PARAMS: tuple[str, ...] = ("logK", "logkappa")
CURVATURE_PARAMS: tuple[str, ...] = ("h", "logs", "q", "u")
"""``shape='curvature'``: q = (kappa - 1) / (x_ref - Ex) (1/nats) replaces log kappa."""
SHAPES: tuple[str, ...] = ("logkappa", "curvature")
RUN_OFFSETS: tuple[str, ...] = ("noncentred", "centred", "split", "mixed")
DEFAULT_EFFECT_SCALE: dict[str, float] = {
    "h": 0.3,
    "logs": 0.3,
    "logkappa": 0.3,
    "u": 0.5,
    "logK": 0.5,
    "q": 0.3,
}
DEFAULT_BASE_SD: dict[str, float] = {"h": 1.0, "logs": 1.0, "logkappa": 0.5, "u": 1.0, "logK": 1.0, "q": 1.0}
SOFTPLUS_SHARPNESS = 20.0
"""kappa = f + softplus(20 (1 + q g - f)) / 20 under shape='curvature' (f = ModelConfig.kappa_floor): equal to
1 + q g to 1e-3 where that is >= f + CURVATURE_LINEAR_MARGIN."""
CURVATURE_LINEAR_MARGIN = 0.25
"""How far above the floor 1 + q g must be for kappa to equal it (to 1e-3: softplus(20 x) / 20 = x + 3e-4 at
x = 0.25); below that the softplus bends towards the floor."""


class GammaShapeTwo(dist.Gamma):
    """Gamma(2, rate) (the prior of the Student-t degrees of freedom), sampled exactly as the sum of two
    Exponential(rate) draws. Same density as ``dist.Gamma(2, rate)``; its sampler compiles in 0.13 s where
    Gamma's rejection loop took 0.6 s, in every fit's prior draws (benchmarks/RESULTS.md, fixed costs V)."""

    def __init__(self, rate: float, *, validate_args: bool | None = None) -> None:
        super().__init__(2.0, rate, validate_args=validate_args)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        shape = sample_shape + self.batch_shape + (2,)
        u = jax.random.uniform(key, shape, minval=jnp.finfo(jnp.result_type(float)).tiny)
        return -jnp.log(u).sum(-1) / self.rate


@dataclass(eq=False)
class ModelConfig:
    """Prior scales and model options (defaults and their reasons: docs/priors.md)."""

    effect_scale: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EFFECT_SCALE))
    base_sd: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE_SD))
    gap_prior_median: float = 0.5
    """Prior median of min_x - Ex (nats)."""
    run_sd_scale: float = 0.03
    """HalfNormal scale of the run-to-run offset sd (nats)."""
    noise_scale: float = 0.1
    """HalfNormal scale of the checkpoint noise (nats)."""
    effect_prior: str = "normal"
    """'hierarchical': d = tau[factor] * z, tau ~ HalfNormal(scale); 'normal': d ~ Normal(0, scale)."""
    nu: float | None = None
    """Student-t degrees of freedom; None = learned with a Gamma(2, 0.1) prior."""
    use_compute: bool | str = "auto"
    """Joint compute-to-loss component: True, False, or 'auto' (on when N, D known and N varies)."""
    prior_Ex: tuple[float, float] | None = None
    """User prior (mean, sd) on the base condition's Ex (nats)."""
    prior_Ey: tuple[float, float] | None = None
    fixed_Ex: list[float] | None = None
    """Paper mode: Ex per condition fixed (from the two-stage fit) instead of sampled."""
    fixed_Ey: list[float] | None = None
    run_offsets: str = "noncentred"
    """'noncentred': b_r = sigma_run * z_r, z_r ~ Normal(0, 1); 'centred': b_r ~ Normal(0, sigma_run) (less
    warm-up on tables with many checkpoints per run, but divergences: benchmarks/RESULTS.md); 'split': the same
    prior in an orthonormal basis per condition, its runs' mean offset non-centred (z_run_mean) and the
    contrasts between them centred (run_contrast). The approximate path always uses 'split' (infer.fit); for
    NUTS it measured no better than the others (benchmarks/RESULTS.md)."""
    run_centering: list[float] | None = None
    """Under run_offsets='mixed': one centeredness in [0, 1] per offset run (Design.offset_runs order), applied by
    NumPyro's LocScaleReparam to the centred form b_r ~ Normal(0, sigma_run): 1 = centred (a run whose checkpoints
    pin its offset), 0 = non-centred. The same prior and posterior as the other forms; only the sampler's
    coordinates differ. Chosen per run by :mod:`bayes_l2l.sampler_policy`."""
    shape: str = "logkappa"
    """Third linear predictor: 'logkappa' (log kappa), or 'curvature': q = (kappa - 1) / (x_ref - Ex), the
    curvature the data identify where log kappa and Ex trade off along a ridge (kappa = 1 + q (x_ref - Ex),
    kept above ``kappa_floor`` by a sharp softplus). An option with its own priors: docs/priors.md,
    benchmarks/RESULTS.md."""
    prior_centres: tuple[float, float] | None = None
    """(h centre in nats, log-slope centre) of the base condition's priors. None (the default) takes them from
    the data: the median y and the log of the pooled least-squares slope. Fixed centres make the prior
    independent of y, which simulation-based calibration needs (benchmarks/sbc.py)."""
    kappa_floor: float = 0.25
    """Under shape='curvature', the lower bound of kappa. Without one, short runs let chains into the kappa -> 0
    limit of the law (y ~ log(x - Ex), K -> infinity; benchmarks/RESULTS.md); the default model's LogNormal(0,
    0.5) prior gives kappa < 0.25 0.3% of its mass. Curvature configs saved without the field load with 0 (as
    fitted); the field does nothing under shape='logkappa'."""

    measurement_error: str = "auto"
    """Errors-in-variables from the table's standard errors (:mod:`bayes_l2l.measurement`): 'on', 'off', or
    'auto' (on where the table gives stderr_independent and that noise is not negligible against the
    checkpoints' scatter). Configs saved before the option load with 'off' (as fitted)."""

    def __post_init__(self) -> None:
        from bayes_l2l.errors import UserInputError

        check_mode(self.measurement_error)
        if self.run_offsets not in RUN_OFFSETS:
            raise UserInputError(f"run_offsets {self.run_offsets!r}: use one of {', '.join(RUN_OFFSETS)}")
        if self.shape not in SHAPES:
            raise UserInputError(f"shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        if self.run_offsets == "mixed":
            c = np.asarray(self.run_centering if self.run_centering is not None else [], dtype=float)
            if self.run_centering is None or not ((c >= 0) & (c <= 1)).all():
                raise UserInputError(
                    "run_offsets 'mixed' needs run_centering: one value in [0, 1] per offset run"
                )
            self.run_centering = [float(v) for v in c]
        if not 0.0 <= self.kappa_floor < 1.0:
            raise UserInputError(
                f"kappa_floor {self.kappa_floor}: use a value in [0, 1) (kappa = 1 is a line)"
            )
        # scales not given (configs saved before an option existed) take the defaults; the caller's dicts
        # are not modified
        self.effect_scale = {**DEFAULT_EFFECT_SCALE, **self.effect_scale}
        self.base_sd = {**DEFAULT_BASE_SD, **self.base_sd}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        for k in ("prior_Ex", "prior_Ey", "prior_centres"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if d.get("shape") == "curvature":
            d.setdefault("kappa_floor", 0.0)  # saved before the floor existed: fitted without one
        d.setdefault("measurement_error", "off")  # saved before the error model existed: fitted without
        return cls(**d)

    @property
    def paper_mode(self) -> bool:
        return self.fixed_Ex is not None

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the linear predictors of this configuration."""
        if self.paper_mode:
            return PAPER_PARAMS
        return CURVATURE_PARAMS if self.shape == "curvature" else PARAMS


def add_model_arguments(parser: Any) -> None:
    """The options ``--shape`` and ``--run-offsets`` on an argparse parser, named as ``bayes-l2l fit`` names
    them: the benchmark scripts' flags. Default 'auto': the sampler policy chooses (bayes_l2l.sampler_policy)."""
    parser.add_argument(
        "--shape",
        choices=("auto", *SHAPES),
        default="auto",
        help="third linear predictor: log kappa or the curvature q (default auto: the policy's choice)",
    )
    parser.add_argument(
        "--run-offsets",
        choices=("auto", *RUN_OFFSETS[:-1]),
        default="auto",
        help="parametrisation of the run offsets (default auto: per run, the policy's choice)",
    )


COLLINEAR_CORRELATION = 0.99
"""|corr(log N, log D)| from which N and D count as varying together (a fixed tokens-per-parameter ratio)."""


def compute_collinear(design: Design) -> bool:
    """Whether log D is (nearly) a linear function of log N over the design's checkpoints: final models of a
    sweep at one tokens-per-parameter ratio. The compute-to-loss law then cannot separate its N and D terms
    (A, B, alpha and beta trade off along a ridge: on a simulated 480-model sweep NUTS hit its maximal tree
    depth on 99.98% of draws, benchmarks/RESULTS.md), so ``use_compute='auto'`` leaves it off."""
    log_n, log_d = np.log(design.params), np.log(design.tokens)
    if np.ptp(log_n) == 0 or np.ptp(log_d) == 0:
        return False
    return bool(abs(np.corrcoef(log_n, log_d)[0, 1]) >= COLLINEAR_CORRELATION)


def compute_enabled(design: Design, config: ModelConfig) -> bool:
    """Whether the joint compute-to-loss component is used for this design."""
    if config.paper_mode or config.use_compute is False:
        return False
    # N and D must both vary (>= 3 distinct values each): with D constant (final models only) the B/D term
    # is a constant the law cannot separate from A, alpha and Ex, and the component adds a funnel, not information.
    ok = design.has_compute and np.unique(design.params).size >= 3 and np.unique(design.tokens).size >= 3
    if ok and config.use_compute == "auto" and compute_collinear(design):
        return False  # D a fixed multiple of N: A, B, alpha, beta form a ridge, not information on Ex
    if config.use_compute is True and not ok:
        from bayes_l2l.errors import UserInputError

        raise UserInputError(
            "the compute-to-loss component needs params N and tokens D on every checkpoint, each with >= 3 distinct values; "
            "this selection lacks them (use --no-compute, or import a table with params and tokens)"
        )
    return bool(ok)


@dataclass(eq=False)
class ModelData:
    """The design as jax arrays plus the constants the priors need."""

    x: jnp.ndarray
    y: jnp.ndarray | None
    weight: jnp.ndarray
    cond: jnp.ndarray
    run: jnp.ndarray
    X: jnp.ndarray
    effect_factor: jnp.ndarray
    n_factors: int
    n_runs: int
    """Runs with a run offset (at least two checkpoints); ``run`` indexes them, n_runs = no offset."""
    min_x: jnp.ndarray
    x_ref: float
    h_center: float
    logs_center: float
    log_n: jnp.ndarray | None
    log_d: jnp.ndarray | None
    log_n_center: float
    log_d_center: float
    unit: jnp.ndarray
    """Index of each point's (condition, run offset) pair; unit_cond / unit_run give the pair's parts. The
    likelihood gathers every per-point parameter with one index (see l2l_model)."""
    unit_cond: jnp.ndarray
    unit_run: jnp.ndarray
    run_basis: jnp.ndarray
    """(n_runs, n_runs) orthonormal, block-diagonal by condition (columns reordered): first the mean direction
    of each condition's runs (1/sqrt(m) on its m runs), then Helmert contrasts between the runs of each."""
    n_run_groups: int
    """Conditions with offset runs: the number of mean directions at the front of run_basis."""
    base_cond: int = 0
    downweighted: bool = False
    x_var: jnp.ndarray | None = None
    """Known independent error variance of each x (:mod:`bayes_l2l.measurement`); None: no error model."""
    y_var: jnp.ndarray | None = None

    @classmethod
    def from_design(cls, design: Design, config: ModelConfig, with_y: bool = True) -> ModelData:
        use_c = compute_enabled(design, config)
        log_n = np.log(design.params) if use_c else None
        log_d = np.log(design.tokens) if use_c else None
        pairs, unit = np.unique(
            np.stack([design.cond_idx, design.offset_idx], axis=1), axis=0, return_inverse=True
        )
        return cls(
            x=jnp.asarray(design.x),
            y=jnp.asarray(design.y) if with_y else None,
            weight=jnp.asarray(design.weight),
            cond=jnp.asarray(design.cond_idx),
            run=jnp.asarray(design.offset_idx),
            X=jnp.asarray(design.effect_matrix),
            effect_factor=jnp.asarray(design.effect_factor_idx),
            n_factors=max(len(design.factor_levels), 1),
            n_runs=len(design.offset_runs),
            min_x=jnp.asarray(design.cond_min_x),
            x_ref=design.x_ref,
            h_center=float(np.median(design.y)) if config.prior_centres is None else config.prior_centres[0],
            logs_center=design.slope_center if config.prior_centres is None else config.prior_centres[1],
            log_n=None if log_n is None else jnp.asarray(log_n),
            log_d=None if log_d is None else jnp.asarray(log_d),
            log_n_center=float(np.median(log_n)) if log_n is not None else 0.0,
            log_d_center=float(np.median(log_d)) if log_d is not None else 0.0,
            downweighted=bool((design.weight != 1.0).any()),
            unit=jnp.asarray(unit.reshape(-1)),
            unit_cond=jnp.asarray(pairs[:, 0]),
            unit_run=jnp.asarray(pairs[:, 1]),
            **_run_basis(design.offset_run_cond_idx),
            **_known_noise(design, config),
        )


def measurement_choice(design: Design, config: ModelConfig) -> Any:
    """:func:`bayes_l2l.measurement.choose` for this design under the config's mode (paper mode: off),
    computed once per design and mode (``Design.measurement_choices``; K-fold's training designs keep the
    full design's)."""
    mode = "off" if config.paper_mode else config.measurement_error
    if mode not in design.measurement_choices:
        design.measurement_choices[mode] = choose(design.points, mode)
    return design.measurement_choices[mode]


def _known_noise(design: Design, config: ModelConfig) -> dict[str, Any]:
    """ModelData.x_var and y_var where the error model is used on this design."""
    choice = measurement_choice(design, config)
    if not choice.used:
        return {}
    x_var, y_var = independent_variances(design.points, choice.sources)
    return {"x_var": jnp.asarray(x_var), "y_var": jnp.asarray(y_var)}


def _run_basis(cond_of_run: np.ndarray) -> dict[str, Any]:
    """ModelData.run_basis and n_run_groups from the condition of each offset run (Design.offset_run_cond_idx)."""
    n_runs = len(cond_of_run)
    groups: dict[int, list[int]] = {}
    for r, c in enumerate(cond_of_run):
        groups.setdefault(int(c), []).append(r)
    means, contrasts = [], []
    for runs in groups.values():
        m = len(runs)
        helmert = np.zeros((m, m))
        helmert[:, 0] = 1.0 / np.sqrt(m)
        for j in range(1, m):
            helmert[:j, j] = 1.0 / np.sqrt(j * (j + 1))
            helmert[j, j] = -j / np.sqrt(j * (j + 1))
        block = np.zeros((n_runs, m))
        block[runs, :] = helmert
        means.append(block[:, :1])
        contrasts.append(block[:, 1:])
    basis = np.concatenate(means + contrasts, axis=1) if n_runs else np.zeros((0, 0))
    return {"run_basis": jnp.asarray(basis), "n_run_groups": len(means)}


def curvature_kappa(q: Any, g_ref: Any, floor: float, softplus: Any = None) -> Any:
    """kappa = floor + softplus(20 (1 + q g_ref - floor)) / 20: 1 + q g_ref (to 1e-3 where that is >= floor +
    CURVATURE_LINEAR_MARGIN), kept smoothly above ``floor``. ``softplus``: the array library's (jax.nn's by default; PyMC's twin
    passes pytensor's)."""
    softplus = softplus or jax.nn.softplus
    return floor + softplus(SOFTPLUS_SHARPNESS * (1.0 + q * g_ref - floor)) / SOFTPLUS_SHARPNESS


def _linear_predictor(name: str, data: ModelData, config: ModelConfig, center: float) -> jnp.ndarray:
    """base + X . (tau[factor] * z) for one nonlinear parameter; records base, tau, z and the effects."""
    base = numpyro.sample(f"base_{name}", dist.Normal(center, config.base_sd[name]))
    n_eff = data.X.shape[1]
    if n_eff == 0:
        return jnp.full((data.X.shape[0],), base)
    if config.effect_prior == "normal":
        effect = numpyro.sample(
            f"d_{name}", dist.Normal(0.0, config.effect_scale[name]).expand([n_eff]).to_event(1)
        )
        return base + data.X @ effect
    tau = numpyro.sample(
        f"tau_{name}", dist.HalfNormal(config.effect_scale[name]).expand([data.n_factors]).to_event(1)
    )
    z = numpyro.sample(f"z_{name}", dist.Normal(0.0, 1.0).expand([n_eff]).to_event(1))
    effect = numpyro.deterministic(f"d_{name}", tau[data.effect_factor] * z)
    return base + data.X @ effect


def l2l_model(data: ModelData, config: ModelConfig) -> None:
    """The NumPyro model. Deterministic sites K, kappa, Ex, Ey (per condition)."""
    if config.paper_mode:
        k = numpyro.deterministic("K", jnp.exp(_linear_predictor("logK", data, config, 0.0)))
        kappa = numpyro.deterministic("kappa", jnp.exp(_linear_predictor("logkappa", data, config, 0.0)))
        ex = numpyro.deterministic("Ex", jnp.asarray(config.fixed_Ex))
        ey = numpyro.deterministic("Ey", jnp.asarray(config.fixed_Ey))
        g_ref = data.x_ref - ex
        h = k * jnp.exp(kappa * jnp.log(g_ref)) + ey
        amp = h - ey
    else:
        h = _linear_predictor("h", data, config, data.h_center)
        slope = jnp.exp(_linear_predictor("logs", data, config, data.logs_center))
        if config.shape == "curvature":
            q = _linear_predictor("q", data, config, 0.0)
        else:
            kappa = numpyro.deterministic("kappa", jnp.exp(_linear_predictor("logkappa", data, config, 0.0)))
        u = _linear_predictor("u", data, config, float(np.log(config.gap_prior_median)))
        ex = numpyro.deterministic("Ex", data.min_x - jnp.exp(u))
        g_ref = data.x_ref - ex  # > 0 because x_ref >= max_c min_x_c > Ex_c
        if config.shape == "curvature":
            kappa = numpyro.deterministic("kappa", curvature_kappa(q, g_ref, config.kappa_floor))
        amp = slope * g_ref / kappa  # = K * g_ref**kappa, the curve's height above Ey at x_ref
        k = numpyro.deterministic("K", amp / jnp.exp(kappa * jnp.log(g_ref)))
        ey = numpyro.deterministic("Ey", h - amp)
        if config.prior_Ex is not None:
            numpyro.factor("user_prior_Ex", dist.Normal(*config.prior_Ex).log_prob(ex[data.base_cond]))
        if config.prior_Ey is not None:
            numpyro.factor("user_prior_Ey", dist.Normal(*config.prior_Ey).log_prob(ey[data.base_cond]))

    sigma_run = numpyro.sample("sigma_run", dist.HalfNormal(config.run_sd_scale))
    if data.n_runs > 0 and config.run_offsets == "centred":
        run_offset = numpyro.sample(
            "run_offset", dist.Normal(0.0, sigma_run).expand([data.n_runs]).to_event(1)
        )
        run_offset = jnp.concatenate([run_offset, jnp.zeros(1)])
    elif data.n_runs > 0 and config.run_offsets == "mixed":
        # written centred; LocScaleReparam moves each run to its own centeredness (1 centred, 0 non-centred)
        centering = jnp.asarray(config.run_centering)
        with numpyro.handlers.reparam(config={"run_offset": LocScaleReparam(centered=centering)}):
            run_offset = numpyro.sample(
                "run_offset", dist.Normal(0.0, sigma_run).expand([data.n_runs]).to_event(1)
            )
        run_offset = jnp.concatenate([run_offset, jnp.zeros(1)])
    elif data.n_runs > 0 and config.run_offsets == "split":
        # the same prior, b ~ Normal(0, sigma_run I), in an orthonormal basis: each condition's mean offset
        # non-centred (only the prior sets it: the condition's height absorbs it), the contrasts between its
        # runs centred (the data set them)
        g = data.n_run_groups
        z_mean = numpyro.sample("z_run_mean", dist.Normal(0.0, 1.0).expand([g]).to_event(1))
        coef = sigma_run * z_mean
        if data.n_runs > g:
            contrast = numpyro.sample(
                "run_contrast", dist.Normal(0.0, sigma_run).expand([data.n_runs - g]).to_event(1)
            )
            coef = jnp.concatenate([coef, contrast])
        run_offset = numpyro.deterministic("run_offset", data.run_basis @ coef)
        run_offset = jnp.concatenate([run_offset, jnp.zeros(1)])
    elif data.n_runs > 0:
        z_run = numpyro.sample("z_run", dist.Normal(0.0, 1.0).expand([data.n_runs]).to_event(1))
        run_offset = numpyro.deterministic("run_offset", sigma_run * z_run)
        run_offset = jnp.concatenate([run_offset, jnp.zeros(1)])  # last slot: runs with one checkpoint
    else:
        run_offset = jnp.zeros(1)

    # One gather per point instead of six (the gradient of a gather is a scatter-add, about half the cost of
    # the potential's gradient at 6,000 points; one gather: 0.304 -> 0.261 ms per gradient, benchmarks/RESULTS.md).
    per_cond = jnp.stack([h, amp, kappa, ex, g_ref], axis=1)
    per_unit = jnp.concatenate([per_cond[data.unit_cond], run_offset[data.unit_run][:, None]], axis=1)
    h_i, amp_i, kappa_i, ex_i, g_i, offset_i = per_unit[data.unit].T
    rel = jnp.clip((data.x - ex_i) / g_i, 1e-12)
    mu = h_i + amp_i * (jnp.exp(kappa_i * jnp.log(rel)) - 1.0) + offset_i
    sigma = numpyro.sample("sigma", dist.HalfNormal(config.noise_scale))
    nu = config.nu if config.nu is not None else numpyro.sample("nu", GammaShapeTwo(0.1))

    if data.log_n is not None and data.log_d is not None:
        _compute_component(data, ex)

    if data.x_var is not None and data.y_var is not None:
        scale = known_scale(sigma, amp_i, kappa_i, g_i, rel, data.x_var, data.y_var, xp=jnp)
    else:
        scale = sigma
    likelihood = dist.StudentT(nu, mu, scale)
    numpyro.sample("y", likelihood, obs=data.y)
    if data.y is not None and data.downweighted:
        # Down-weighted (early) checkpoints: add (w - 1) * log p so that each point counts w times; the
        # "y" site keeps the unweighted pointwise log-likelihood that LOO needs.
        numpyro.factor("early_weight", jnp.sum((data.weight - 1.0) * likelihood.log_prob(data.y)))


def _compute_component(data: ModelData, ex: jnp.ndarray) -> None:
    """x_i ~ Normal(Ex_c + ((A/N)^(alpha/beta) + B/D)^beta, sigma_x): the compute-to-loss law sharing Ex."""
    # A and B are parametrised relative to the median N and D, so log_a, log_b are O(1).
    log_a = numpyro.sample("cl_log_a", dist.Normal(-2.0, 3.0))
    log_b = numpyro.sample("cl_log_b", dist.Normal(-2.0, 3.0))
    alpha = numpyro.sample("cl_alpha", dist.LogNormal(np.log(0.3), 0.5))
    beta = numpyro.sample("cl_beta", dist.LogNormal(np.log(0.3), 0.5))
    term_n = jnp.exp((alpha / beta) * (log_a + data.log_n_center - data.log_n))
    term_d = jnp.exp(log_b + data.log_d_center - data.log_d)
    x_hat = ex[data.cond] + jnp.exp(beta * jnp.log(term_n + term_d))
    sigma_x = numpyro.sample("cl_sigma_x", dist.HalfNormal(0.1))
    numpyro.sample("x_obs", dist.Normal(x_hat, sigma_x), obs=data.x)


def curve(x: np.ndarray, K: np.ndarray, kappa: np.ndarray, Ex: np.ndarray, Ey: np.ndarray) -> np.ndarray:
    """Evaluate the law on draws: params of shape (S,), x of shape (G,) -> (S, G); NaN where x <= Ex."""
    x = np.asarray(x, dtype=float)[None, :]
    gap = x - np.asarray(Ex, dtype=float)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(K)[:, None] * np.power(gap, np.asarray(kappa)[:, None]) + np.asarray(Ey)[:, None]
    return np.where(gap > 0, out, np.nan)
