"""MetricTable: mean row, NaN policy, markdown in percent, JSON-ready dicts."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from zsad.metrics import MetricInputError, MetricTable


def make_table() -> MetricTable:
    table = MetricTable()
    table.add("bottle", {"aupro": 0.8812, "i_auroc": 0.9234, "p_auroc": 0.9, "extra": 0.5})
    table.add("capsule", {"i_auroc": 0.8011, "p_auroc": 0.95, "aupro": 0.7001, "extra": 0.25})
    return table


def test_mean_row_is_mean_over_categories() -> None:
    table = make_table()
    mean = table.mean()
    for key in ("i_auroc", "p_auroc", "aupro", "extra"):
        assert mean[key] == pytest.approx(np.mean([table.rows[c][key] for c in ("bottle", "capsule")]))
    assert list(table.rows_with_mean()) == ["bottle", "capsule", "mean"]


def test_columns_in_standard_order_then_others() -> None:
    assert make_table().metrics == ["i_auroc", "p_auroc", "aupro", "extra"]


def test_markdown_in_percent_with_one_decimal() -> None:
    text = make_table().to_markdown()
    lines = text.strip().splitlines()
    assert lines[0] == "| category | I-AUROC | P-AUROC | AUPRO | extra |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert lines[2] == "| bottle | 92.3 | 90.0 | 88.1 | 50.0 |"
    mean_i = f"{100 * (0.9234 + 0.8011) / 2:.1f}"
    assert lines[4].startswith(f"| mean | {mean_i} |")
    assert "mean" not in make_table().to_markdown(with_mean=False)


def test_nan_and_missing_values_make_the_mean_nan() -> None:
    table = make_table()
    table.add("screw", {"i_auroc": float("nan"), "p_auroc": 0.9})  # no aupro, no extra
    mean = table.mean()
    assert math.isnan(mean["i_auroc"]) and math.isnan(mean["aupro"])
    assert mean["p_auroc"] == pytest.approx((0.9 + 0.95 + 0.9) / 3)
    assert "| screw | n/a | 90.0 | n/a | n/a |" in table.to_markdown()


def test_to_dict_is_json_ready_and_round_trips() -> None:
    table = make_table()
    table.add("screw", {"i_auroc": float("nan")})
    data = table.to_dict()
    text = json.dumps(data, allow_nan=False)  # no NaN may reach JSON
    assert data["screw"]["i_auroc"] is None and data["mean"]["i_auroc"] is None
    assert data["bottle"]["i_auroc"] == 0.9234  # fractions, unrounded
    again = MetricTable.from_dict(json.loads(text))
    assert again.to_dict() == data


def test_reserved_and_duplicate_categories() -> None:
    table = make_table()
    with pytest.raises(MetricInputError, match="reserved"):
        table.add("mean", {"i_auroc": 0.5})
    with pytest.raises(MetricInputError, match="already"):
        table.add("bottle", {"i_auroc": 0.5})


def test_empty_table_renders() -> None:
    table = MetricTable()
    assert table.to_dict() == {}
    assert table.to_markdown().startswith("| category |")
