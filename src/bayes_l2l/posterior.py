"""A fitted model in memory and on disk: :class:`Posterior` (the ArviZ DataTree with the design, model
configuration, sampler settings, diagnostics and identification) and its folder:

* ``posterior.nc`` — ArviZ DataTree (groups posterior, prior, sample_stats, log_likelihood, observed_data)
* ``design.json`` — the question and the design (points, conditions, factor levels, what was dropped)
* ``fit.json`` — method, sampler settings, model config, diagnostics, identification, versions
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayes_l2l.design import Design
from bayes_l2l.errors import UserInputError
from bayes_l2l.model import CURVATURE_PARAMS, PAPER_PARAMS, PARAMS, ModelConfig
from bayes_l2l.posterior_files import POSTERIOR_FILES, check_posterior_folder

EFFECT_VARS = tuple(f"d_{p}" for p in dict.fromkeys(PARAMS + CURVATURE_PARAMS + PAPER_PARAMS))
SUMMARY_VARS = ("K", "kappa", "Ex", "Ey", *EFFECT_VARS, "sigma", "sigma_run", "nu")


@dataclass
class Posterior:
    """A fitted model: the ArviZ DataTree plus the design, config, diagnostics and identification."""

    dt: Any
    design: Design
    config: ModelConfig
    method: str
    settings: dict[str, Any]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    identification: pd.DataFrame | None = None
    wall_time_s: float = float("nan")

    # ------------------------------------------------------------------ draws
    def draws(self, var: str) -> np.ndarray:
        """Posterior draws of a variable with chain and draw flattened into the first axis."""
        da = self.dt["posterior"][var]
        arr = np.asarray(da.values)
        return arr.reshape((-1, *arr.shape[2:]))

    def condition_params(self) -> dict[str, np.ndarray]:
        """K, kappa, Ex, Ey draws of shape (S, n_conditions)."""
        return {p: self.draws(p) for p in ("K", "kappa", "Ex", "Ey")}

    def summary(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, ESS, R-hat) of the reported quantities, joined with identification."""
        names = [v for v in SUMMARY_VARS if v in self.dt["posterior"]]
        summ = az.summary(self.dt, var_names=names, ci_kind="hdi", ci_prob=ci_prob, round_to="none")
        if self.identification is not None:
            summ = summ.join(self.identification[["contraction", "identified"]], how="left")
        return summ

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the posterior folder; refuse to replace an existing one unless ``overwrite``."""
        folder = Path(folder)
        check_posterior_folder(folder, overwrite=overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "posterior.nc.tmp"
        self.dt.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(folder / "posterior.nc")
        (folder / "design.json").write_text(self.design.to_json())
        fit = {
            "method": self.method,
            "settings": self.settings,
            "config": self.config.to_dict(),
            "diagnostics": self.diagnostics,
            "identification": None
            if self.identification is None
            else json.loads(self.identification.reset_index().to_json(orient="records")),
            "wall_time_s": self.wall_time_s,
            "versions": versions(),
        }
        (folder / "fit.json").write_text(json.dumps(fit, indent=1, default=float))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Posterior:
        """Read a posterior folder written by :meth:`save`."""
        folder = Path(folder)
        if folder.is_file():
            raise UserInputError(
                f"{folder}: is a file, not a posterior folder; give the folder `bayes-l2l fit ... -o FOLDER` "
                "wrote (a loss table is read by `bayes-l2l inspect`)"
            )
        for name in POSTERIOR_FILES:
            if not (folder / name).exists():
                raise UserInputError(
                    f"{folder}: not a posterior folder ({name} missing); create one with `bayes-l2l fit ... -o {folder}`"
                )
        fit = json.loads((folder / "fit.json").read_text())
        dt = xr.open_datatree(folder / "posterior.nc", engine="h5netcdf").load()
        ident = fit.get("identification")
        ident_df = pd.DataFrame(ident).set_index("index") if ident else None
        if ident_df is not None:
            ident_df.index.name = None
        return cls(
            dt=dt,
            design=Design.from_json((folder / "design.json").read_text()),
            config=ModelConfig.from_dict(fit["config"]),
            method=fit["method"],
            settings=fit["settings"],
            diagnostics=fit["diagnostics"],
            identification=ident_df,
            wall_time_s=fit.get("wall_time_s", float("nan")),
        )


def load(folder: str | Path) -> Posterior:
    """Read a posterior folder (see :class:`Posterior`)."""
    return Posterior.load(folder)


def versions() -> dict[str, str]:
    """Versions of the packages that produced a result, for the record."""
    import arviz_base
    import jax
    import numpyro
    import scipy

    import bayes_l2l

    return {
        "bayes_l2l": bayes_l2l.__version__,
        "python": platform.python_version(),
        "numpyro": numpyro.__version__,
        "jax": jax.__version__,
        "arviz_base": arviz_base.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "xarray": xr.__version__,
    }
