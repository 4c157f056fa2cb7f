"""The posterior folder on disk: what `Posterior.save` writes, the checks before writing one, and its removal.

No jax here, so that the CLI can check its -o folder before it imports the model (and before a fit)."""

from __future__ import annotations

from pathlib import Path

from bayes_l2l.errors import UserInputError

POSTERIOR_FILES = ("posterior.nc", "design.json", "fit.json")
"""What `Posterior.save` writes into its folder."""
SHARED_PREFIX = "shared_"
"""A posterior folder caches the fit without factor F (one shared curve) in ``<folder>/shared_<F>/``."""


def is_posterior_folder(path: Path) -> bool:
    """True for a folder written by ``Posterior.save`` (it holds fit.json)."""
    return path.is_dir() and (path / "fit.json").exists()


def require_posterior_folder(folder: str | Path) -> Path:
    """``folder`` as a Path if it holds a saved posterior (every file of :data:`POSTERIOR_FILES`); otherwise
    a :class:`UserInputError` naming the folder and what is missing. Cheap (no jax): commands that read a
    posterior call it before they import the model."""
    folder = Path(folder)
    written_by = f"a posterior folder (written by `bayes-l2l fit`) holds {', '.join(POSTERIOR_FILES)}"
    if not folder.exists():
        raise UserInputError(f"{folder}: no such posterior folder; {written_by}")
    if not folder.is_dir():
        raise UserInputError(f"{folder}: is a file, not a posterior folder; {written_by}")
    missing = [name for name in POSTERIOR_FILES if not (folder / name).is_file()]
    if missing:
        raise UserInputError(f"{folder}: not a posterior folder: {', '.join(missing)} missing; {written_by}")
    return folder


def check_posterior_folder(folder: str | Path, *, overwrite: bool = False) -> None:
    """Refuse a posterior folder where a file stands, or one holding a posterior's files (unless
    ``overwrite``); called before fitting, so that a fit is not lost to a bad -o."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserInputError(
            f"{folder}: is a file; -o takes a folder for the posterior ({', '.join(POSTERIOR_FILES)})"
        )
    from bayes_l2l.output_paths import check_writable

    check_writable(folder / "fit.json", f"-o {folder}:")
    if overwrite:
        return
    if (folder / "fit.json").exists():
        raise UserInputError(
            f"{folder}: holds a posterior already; choose another -o folder or pass --overwrite"
        )
    clash = [name for name in POSTERIOR_FILES if (folder / name).exists()]
    if clash:
        raise UserInputError(
            f"{folder}: holds {', '.join(clash)}, which writing the posterior would replace; choose another "
            "-o folder or pass --overwrite"
        )


def remove_posterior(folder: Path) -> None:
    """Delete what `Posterior.save` wrote in ``folder`` and the shared-curve fits cached in it
    (``shared_<F>/``); any other file the user keeps there stays."""
    for sub in folder.glob(SHARED_PREFIX + "*"):
        if is_posterior_folder(sub):
            remove_posterior(sub)
            if not any(sub.iterdir()):
                sub.rmdir()
    for name in (*POSTERIOR_FILES, "posterior.nc.tmp"):
        (folder / name).unlink(missing_ok=True)
