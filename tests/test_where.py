"""Row filters: --where COLUMN=VALUE, !=, sets and numeric comparisons, in the table, the API and the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bayes_l2l.cli import main
from bayes_l2l.comparisons import question_folder
from bayes_l2l.design import Question
from bayes_l2l.errors import LossTableError, UserInputError
from bayes_l2l.table import LossTable
from bayes_l2l.where import condition_text, normalise_where, parse_where, parse_where_item


def _table() -> LossTable:
    rows = []
    for i, (size, tokens) in enumerate(
        [("150M", 1e8), ("150M", 2e9), ("300M", 5e9), ("1B", 1e10), ("a,b", 3e9)]
    ):
        rows.append(
            dict(run=f"r{i}", checkpoint="c", tokens=tokens, size=size, learning_rate=["3e-4", "1e-3"][i % 2],
                 metric="val/c4", kind="validation", value=3.0 + i / 10, unit="nats/token", estimator="e")
        )  # fmt: skip
    return LossTable.from_frame(pd.DataFrame(rows))


def _runs(t: LossTable) -> list[str]:
    return t.runs


@pytest.mark.parametrize(
    ("where", "runs"),
    [
        ({"size": "150M"}, ["r0", "r1"]),
        ({"size": "!=150M"}, ["r2", "r3", "r4"]),
        ({"size": "150M,300M"}, ["r0", "r1", "r2"]),
        ({"size": ["150M", "1B"]}, ["r0", "r1", "r3"]),
        ({"size": "!=150M,300M"}, ["r3", "r4"]),
        ({"size": "a,b"}, ["r4"]),  # a level that holds a comma still matches as itself
        ({"tokens": ">=2e9"}, ["r1", "r2", "r3", "r4"]),
        ({"tokens": ">2e9"}, ["r2", "r3", "r4"]),
        ({"tokens": "<2e9"}, ["r0"]),
        ({"tokens": "<=2e9"}, ["r0", "r1"]),
        ({"tokens": 2e9}, ["r1"]),
        ({"tokens": "1e8,5e9"}, ["r0", "r2"]),
        ({"learning_rate": "<5e-4"}, ["r0", "r2", "r4"]),  # a factor whose levels are all numbers
        ({"size": "!=150M", "tokens": "<=5e9"}, ["r2", "r4"]),
    ],
)
def test_where_forms(where: dict, runs: list[str]) -> None:
    assert _table().select(where=where).runs == runs


def test_where_errors() -> None:
    t = _table()
    with pytest.raises(LossTableError, match="column 'size' is not numeric .*150M"):
        t.where(size=">=1e9")
    with pytest.raises(UserInputError, match="'lots' is not a number"):
        t.where(tokens=">=lots")
    with pytest.raises(UserInputError, match="'x' is not a number"):
        t.where(tokens="x")
    with pytest.raises(LossTableError, match="does not have"):
        t.where(nope="1")
    with pytest.raises(LossTableError, match=r"no rows match size!=150M, tokens<1e9"):
        t.where(size="!=150M", tokens="<1e9")


def test_cli_parsing() -> None:
    assert parse_where_item("size!=150M") == ("size", "!=150M")
    assert parse_where_item("tokens>=1e9") == ("tokens", ">=1e9")
    assert parse_where_item("tokens<1e9") == ("tokens", "<1e9")
    assert parse_where_item("size=150M,300M") == ("size", "150M,300M")
    assert parse_where_item("architecture=Llama") == ("architecture", "Llama")
    assert parse_where(["a=1", "b>2"]) == {"a": "1", "b": ">2"}
    with pytest.raises(UserInputError, match="expected COLUMN=VALUE"):
        parse_where_item("oops")
    with pytest.raises(UserInputError, match="filtered twice"):
        parse_where(["a=1", "a=2"])
    with pytest.raises(UserInputError, match="one number"):
        parse_where_item("tokens>=1,2")
    assert condition_text("tokens", ">=1e9") == "tokens>=1e9"
    assert normalise_where({"size": ["150M", "300M"], "tokens": 1e9}) == {
        "size": "150M,300M",
        "tokens": "1000000000",
    }


def test_folders_keep_plain_equality_and_name_operators() -> None:
    plain = question_folder(Question(x="val/c4", y="val/c4", where={"architecture": "Llama"}))
    assert "where_architecture=Llama-" in plain.name
    ne = question_folder(Question(x="val/c4", y="val/c4", where={"size": "!=150M", "tokens": ">=1e9"}))
    assert "where_size_ne_150M+tokens_ge_1e9" in ne.name


def test_cli_baseline_takes_the_new_forms(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.parquet"
    _table().save(path)
    assert main(["inspect", str(path)]) == 0
    capsys.readouterr()
    code = main(["baseline", str(path), "--x", "val/c4", "--y", "val/c4", "--where", "size>=1", "--json"])
    assert code == 2
    assert "column 'size' is not numeric" in capsys.readouterr().err
    code = main(["baseline", str(path), "--x", "val/c4", "--y", "val/c4", "--where", "tokens>=1e99"])
    assert code == 2
    assert "no rows match tokens>=1e99" in capsys.readouterr().err
