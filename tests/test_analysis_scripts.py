"""The analysis scripts' own logic (no fits): the Pile-vs-deduped design check and the units check on the
paper's table, the verdict rules, Gemstones' shape labels and thinning, and the missing-data skip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
sys.path.insert(0, str(ANALYSIS))

import gemstones  # noqa: E402
import llm_line  # noqa: E402
from conftest import shared_path  # noqa: E402

from bayes_l2l.io import import_table  # noqa: E402


@pytest.fixture(scope="module")
def paper_table():
    return import_table("llm-line", [shared_path("data", "llm_line", "latest_pm_hf.csv")])


def test_pile_vs_deduped_is_confounded_in_the_paper_table(paper_table) -> None:
    check = llm_line.pile_dedup_check(paper_table)
    assert check["decision"].startswith("not identifiable: confounded with")
    deduped = [c for c in check["cells"] if c["pretraining_data"] == "The Pile Deduped"]
    assert {c["architecture"] for c in deduped} == {"Llama"}


def test_bytes_per_token_differs_between_tokenizers(paper_table) -> None:
    units = llm_line.bytes_per_token(paper_table, ["val/c4"])["val/c4"]
    assert {"gpt2-HF", "gpt-neox"} <= set(units)
    for v in units.values():
        assert 3.0 < v < 5.5  # English web text: about 4 bytes per BPE token


def _rec(decisions, maxabs_hi=0.01, ok=True):
    return {
        "diagnostics_ok": ok,
        "contrasts": [
            {"level": f"L{i}", "decision": d, "gap_maxabs_hdi90": [0.0, maxabs_hi]}
            for i, d in enumerate(decisions)
        ],
    }


def test_verdict_rules() -> None:
    data = [{"diagnostics_ok": True, "contrasts": [{"gap_maxabs_hdi90": [0.3, 0.5]}]}]
    assert llm_line.verdict("large shift", [_rec(["shift", "shift"])], data)[0] == "supports"
    assert llm_line.verdict("large shift", [_rec(["shift", "no practical shift"])], data)[0] == "refutes"
    assert llm_line.verdict("little shift", [_rec(["no practical shift"])], data)[0] == "supports"
    # a shift clearly smaller than the data's still supports "little shift"; one as large refutes it
    assert llm_line.verdict("little shift", [_rec(["shift"], maxabs_hi=0.1)], data)[0] == "supports"
    assert llm_line.verdict("little shift", [_rec(["shift"], maxabs_hi=0.4)], data)[0] == "refutes"
    assert llm_line.verdict("little shift", [_rec(["undecided"])], data)[0] == "cannot decide"
    assert llm_line.verdict("large shift", [_rec(["shift"], ok=False)], data) == (
        "cannot decide",
        "sampler diagnostics failed",
    )


def test_shape_labels_and_thinning() -> None:
    assert gemstones.shape_label(1024, 64) == "deep"
    assert gemstones.shape_label(1024, 24) == "balanced"
    assert gemstones.shape_label(4096, 12) == "wide"
    paths = [shared_path(*f.parts) for f in gemstones.FILES]
    table = gemstones.with_shape(import_table("gemstones", paths[:1]))
    thinned, before, after = gemstones.thin_checkpoints(table, every=3)
    assert after == pytest.approx(before / 3, rel=0.05)
    last = table.checkpoints().sort_values("step").groupby("run").tail(1)[["run", "checkpoint"]]
    kept = thinned.checkpoints()[["run", "checkpoint"]]
    assert len(last.merge(kept)) == len(last)  # every run keeps its final checkpoint


def test_missing_shared_data_is_a_visible_skip(tmp_path: Path, capsys) -> None:
    assert llm_line.run(["--shared", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert "skipped:" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_headline_table_lists_contrasts_and_unfitted_comparisons() -> None:
    from common import Outcome, headline_table

    fitted = {
        "title": "(a) data",
        "contrasts": [
            {
                "level": "C4",
                "base": "FineWeb-Edu",
                "gap_mean": -0.5,
                "gap_hdi90": [-0.6, -0.4],
                "gap_maxabs": 0.55,
                "gap_maxabs_hdi90": [0.45, 0.65],
                "p_shift": 1.0,
                "decision": "shift",
            }
        ],
        "attempts": [
            {
                "ok": True,
                "max_rhat": 1.004,
                "min_ess_bulk": 900.0,
                "divergences": 0,
                "effect_prior": "normal",
                "target_accept": 0.95,
            }
        ],
    }
    unfitted = {"title": "(b) arch", "error": "one condition only"}
    md = headline_table([Outcome(fitted), Outcome(unfitted)], [["(d) check", "—", "—", "—", "—", "x", "—"]])
    lines = md.splitlines()
    assert len(lines) == 5
    assert "C4 vs FineWeb-Edu | -0.500 [-0.600, -0.400] | 0.550 [0.450, 0.650] | 1.00 | shift" in lines[2]
    assert "R-hat 1.004, bulk ESS 900, 0 div., ok (attempt 1 of 1, normal/0.95)" in lines[2]
    assert "not fitted: one condition only" in lines[3] and lines[4].startswith("| (d) check")


def test_analysis_fits_go_through_the_library_robust_fit(monkeypatch) -> None:
    """The scripts keep no ladder of their own: fit_comparison calls robust_fit (quick: one short attempt,
    no retries) and flattens its attempt records for the markdown."""
    from types import SimpleNamespace

    import common

    seen = {}

    def fake_fit_robust(design, config, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw, config=config)
        rec = {
            "run_offsets": "noncentred",
            "run_centering": None,
            "shape": "logkappa",
            "mass": "laplace",
            "target_accept": 0.95,
            "warmup": 300,
            "draws": 300,
            "chains": 2,
            "wall_s": 1.5,
            "diagnostics": {"ok": True, "problems": [], "max_rhat": 1.004, "divergences": 0},
        }
        return SimpleNamespace(settings={"attempts": [rec], "compute_component": False, "kept_attempt": 1})

    monkeypatch.setattr(common, "fit_robust", fake_fit_robust)
    comp = common.Comparison(key="k", title="t", factor="f", question=None, config={"use_compute": False})
    _, attempts = common.fit_comparison(None, comp, quick=True)
    assert seen["retry"] is False and seen["user"].draws == 300 and seen["config"].use_compute is False
    (a,) = attempts
    assert a["ok"] and a["max_rhat"] == 1.004 and a["wall_time_s"] == 1.5
    assert common.rung_label(a) == "logkappa, offsets noncentred, mass laplace, accept 0.95, 2x(300+300)"
