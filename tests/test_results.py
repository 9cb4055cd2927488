"""Results files: deterministic bytes, rounding, atomic writes."""
import json
import math

import numpy as np
import pytest
import torch

from recos_utils.core.results import mean_std, read_results, to_plain, write_results


def test_same_results_give_identical_bytes_whatever_the_insertion_order(tmp_path):
    a = {"b": 1.0 / 3, "a": {"y": torch.tensor([0.5, 2 / 3]), "x": np.float32(0.25)}}
    b = {"a": {"x": np.float32(0.25), "y": torch.tensor([0.5, 2 / 3])}, "b": 1.0 / 3}
    pa = write_results(tmp_path / "1", "ch", a)
    pb = write_results(tmp_path / "2", "ch", b)
    assert pa.read_bytes() == pb.read_bytes()
    assert read_results(tmp_path / "1", "ch")["b"] == 0.333333


def test_floats_are_rounded_to_six_significant_digits_and_nan_becomes_null():
    assert to_plain(123456789.123) == 123457000.0
    assert to_plain(0.000123456789) == 0.000123457
    assert to_plain(float("nan")) is None
    assert to_plain([True, None, "s", 3]) == [True, None, "s", 3]
    with pytest.raises(TypeError, match="cannot write object"):
        to_plain(object())


def test_failed_write_leaves_the_previous_file(tmp_path):
    write_results(tmp_path, "ch", {"v": 1})
    with pytest.raises(TypeError):
        write_results(tmp_path, "ch", {"v": object()})
    assert json.loads((tmp_path / "ch.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ch.json"]


def test_mean_std_is_the_sample_statistics():
    r = mean_std([1.0, 2.0, 4.0])
    assert r["n"] == 3 and math.isclose(r["mean"], 7 / 3)
    assert math.isclose(r["std"], float(np.std([1, 2, 4], ddof=1)))
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}
    assert r["values"] == [1.0, 2.0, 4.0]


def test_a_documented_layout_is_checked_when_written(tmp_path):
    from recos_utils.core.results import LAYOUTS, ResultsLayoutError

    good = {"quick": True, "claims": {}, "weights": "w", "layers": {"conv1": {}}}
    assert set(LAYOUTS["05_alexnet"]) <= set(good)
    write_results(tmp_path, "05_alexnet", good)
    bad = {k: v for k, v in good.items() if k != "layers"}
    with pytest.raises(ResultsLayoutError, match="lack layers"):
        write_results(tmp_path / "new", "05_alexnet", bad)
    assert not (tmp_path / "new" / "05_alexnet.json").exists()
    nested = {"quick": True, "conv1_frac_zeroed": 0.5, "conv_relu_equals_recos": {}}
    with pytest.raises(ResultsLayoutError, match="conv_relu_equals_recos.conv1_max_abs_err"):
        write_results(tmp_path, "01_recos_model", nested)
