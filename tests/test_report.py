"""The HTML report: self-contained, every section present, SIMULATED labelled, problems visible."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from test_plots import FACTORS, synthetic_posterior

from bayes_l2l import evidence, plots
from bayes_l2l.errors import UserInputError
from bayes_l2l.report import build_report, is_simulated


@pytest.fixture(scope="module")
def post():
    return synthetic_posterior()


@pytest.fixture(scope="module")
def compares(post):
    return {f: evidence.compare_factor(post, f) for f in FACTORS}


@pytest.fixture(scope="module")
def figs(post, compares):
    """Figures made once and shared by the reports below (making them is the slow part)."""
    import matplotlib.pyplot as plt

    made = plots.make_figures(post, compares, 0.02)
    yield made
    for fig in made.values():
        plt.close(fig)


def _external_refs(text: str) -> list[str]:
    """src/href values that are not embedded data or in-page anchors."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text)
    return [r for r in refs if not (r.startswith("data:") or r.startswith("#"))]


def test_report_is_self_contained_with_all_sections(post, compares, figs, tmp_path) -> None:
    out = build_report(post, compares, tmp_path / "r.html", figures_dir=tmp_path / "figs", figures=figs)
    text = out.read_text()
    assert _external_refs(text) == []
    assert "<link" not in text and "<script" not in text and "@import" not in text
    for heading in ("Question", "Data", "Sampler diagnostics", "Evidence", "Figures", "Caveats"):
        assert f"<h2>{heading}</h2>" in text
    assert text.count('src="data:image/png;base64,') == 6
    assert len(list((tmp_path / "figs").glob("*.png"))) == 6
    assert len(list((tmp_path / "figs").glob("*.svg"))) == 6


def test_report_shows_the_computed_evidence(post, compares, figs, tmp_path) -> None:
    text = build_report(post, compares, tmp_path / "r.html", figures=figs).read_text()
    (code,) = compares["pretraining_data"]
    assert f"{code.gap_mean:+.3f}" in text
    assert f"{code.gap_maxabs:.3f}" in text
    assert code.decision in text
    # the synthetic fit flags Ex and Ey as not identified: the caveats name them
    assert "not identified" in text and "Ex[" in text
    # dropped/used data: condition table with every condition
    for cond in post.design.conditions["condition"]:
        assert str(cond) in text


def test_simulated_data_is_labelled(post, compares, figs, tmp_path) -> None:
    assert is_simulated(post)
    text = build_report(post, compares, tmp_path / "r.html", figures=figs).read_text()
    assert "<title>SIMULATED DATA" in text and 'class="banner"' in text
    text = build_report(post, compares, tmp_path / "r2.html", simulated=False, figures=figs).read_text()
    assert "SIMULATED" not in text


def test_diagnostic_problems_are_shown(post, compares, figs, tmp_path) -> None:
    bad = replace(post, diagnostics={**post.diagnostics, "ok": False, "problems": ["R-hat 1.200 > 1.01 (K)"]})
    text = build_report(bad, compares, tmp_path / "r.html", figures=figs).read_text()
    assert "DIAGNOSTICS FAILED" in text and "R-hat 1.200 &gt; 1.01 (K)" in text
    fine = replace(post, diagnostics={**post.diagnostics, "ok": True, "problems": []})
    good = build_report(fine, compares, tmp_path / "ok.html", figures=figs).read_text()
    assert "All sampler diagnostics passed" in good and "DIAGNOSTICS FAILED" not in good


def test_truth_columns_and_notes(post, compares, figs, tmp_path) -> None:
    import pandas as pd

    truth = pd.DataFrame(
        [{"factor": "pretraining_data", "level": "code", "mean_gap": 0.2, "max_abs_gap": 0.2}]
    )
    text = build_report(
        post, compares, tmp_path / "r.html", truth=truth, notes=["a note <b>escaped</b>"], figures=figs
    ).read_text()
    assert "true max |gap|" in text and "+0.200" in text
    assert "a note &lt;b&gt;escaped&lt;/b&gt;" in text


def test_report_refuses_to_overwrite(post, compares, figs, tmp_path) -> None:
    path = tmp_path / "r.html"
    path.write_text("user file")
    with pytest.raises(UserInputError, match="--overwrite"):
        build_report(post, compares, path, figures=figs)
    assert path.read_text() == "user file"
    build_report(post, compares, path, overwrite=True, figures=figs)
    assert path.read_text().startswith("<!DOCTYPE html>")
