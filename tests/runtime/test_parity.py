"""A bundle run by ``zsad_runtime.Runtime`` gives ``Detector.detect``'s results on the same images: grid maps, image
scores and full-size maps to 1e-4 (fp32), the same verdicts, thresholds, regions and explanations, the same class."""
from __future__ import annotations

import re

import numpy as np
import pytest

from zsad.errors import ZsadError
from zsad.presets import list_presets

from runtime_cases import EXPORTED_PRESETS, OBJECT, REFUSED_PRESETS, SPECS, Spec, make_detector

TOLERANCE = 1e-4
NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")


def _same_result(eager, deployed) -> None:
    assert type(deployed) is type(eager)  # zsad.results.AnomalyResult is zsad_runtime.results.AnomalyResult
    assert (deployed.name, deployed.path, deployed.original_size) == (eager.name, eager.path, eager.original_size)
    assert deployed.ok and eager.ok
    np.testing.assert_allclose(deployed.grid_map, eager.grid_map, rtol=0, atol=TOLERANCE)
    assert abs(deployed.score - eager.score) <= TOLERANCE
    np.testing.assert_allclose(deployed.anomaly_map, eager.anomaly_map, rtol=0, atol=TOLERANCE)
    assert deployed.verdict == eager.verdict
    assert deployed.threshold_rule == eager.threshold_rule
    assert (deployed.threshold is None) == (eager.threshold is None)
    if eager.threshold is not None:
        assert abs(deployed.threshold - eager.threshold) <= TOLERANCE
    assert deployed.postprocess == eager.postprocess
    assert list(deployed.evidence) == list(eager.evidence)
    for name, item in eager.evidence.items():
        mine = deployed.evidence[name]
        assert abs(mine.score - item.score) <= TOLERANCE and abs(mine.map_max - item.map_max) <= TOLERANCE
        assert abs(mine.map_mean - item.map_mean) <= TOLERANCE
    assert abs(deployed.pixel_threshold - eager.pixel_threshold) <= TOLERANCE
    assert [r.box for r in deployed.regions] == [r.box for r in eager.regions]
    assert (deployed.threshold_name, deployed.decided_on, deployed.mask_rule) == \
        (eager.threshold_name, eager.decided_on, eager.mask_rule)
    assert deployed.certainty == pytest.approx(eager.certainty)
    assert (deployed.p_value is None) == (eager.p_value is None)
    if eager.p_value is not None:
        assert deployed.p_value == pytest.approx(eager.p_value)
    assert np.array_equal(deployed.mask, eager.mask)
    # numbers inside the text are compared above; the words must be the same
    assert NUMBER.sub("#", deployed.explanation) == NUMBER.sub("#", eager.explanation)


@pytest.mark.parametrize("name", list(SPECS))
def test_runtime_equals_detect(deployed, name):
    case = deployed(name)
    assert len(case.got) == len(case.expected) == len(case.images) == 11
    scores = np.array([r.score for r in case.expected])
    assert np.ptp(scores) > 0 and case.expected[0].grid_map.std() > 0  # a constant output would prove nothing
    for eager, got in zip(case.expected, case.got):
        _same_result(eager, got)
    rule = "fixed" if "fixed" in name else "conformal" if "conformal" in name else "batch median"
    assert case.got[0].threshold_rule.startswith(rule)
    assert case.runtime.bundle.method == case.detector.last_run["scorers"][0]


@pytest.mark.parametrize("name", ["text", "anomalydino"])
def test_a_call_too_small_for_the_batch_rule_decides_as_detect(deployed, name):
    """One image: the evidence's natural threshold (0.5 for text, the references' leave-one-out maximum for few-shot),
    recorded in the bundle, as ``detect`` decides."""
    case = deployed(name)
    [eager] = case.detector.detect(case.images[:1], references=case.references, object_name=OBJECT)
    [got] = case.runtime.detect(case.images[:1])
    assert got.threshold_rule.startswith("natural threshold")
    _same_result(eager, got)


def test_unreadable_inputs_are_results_with_errors_as_in_detect(deployed, tmp_path):
    case = deployed("anomalydino")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    inputs = [case.images[0], empty, case.images[1]]
    expected = case.detector.detect(inputs, references=case.references)
    got = case.runtime.detect(inputs)
    assert [r.ok for r in got] == [True, False, True]
    assert (got[1].error, got[1].explanation) == (expected[1].error, expected[1].explanation)
    assert "file is empty" in got[1].error


def test_arrays_and_batches_are_inputs_as_in_detect(deployed):
    from PIL import Image

    case = deployed("text")
    arrays = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in case.images[:3]])
    got = case.runtime.detect(arrays)
    assert [r.name for r in got] == ["image 0", "image 1", "image 2"]
    for mine, eager in zip(got, case.expected[:3]):
        np.testing.assert_allclose(mine.grid_map, eager.grid_map, rtol=0, atol=TOLERANCE)


def test_the_batch_size_of_the_runtime_does_not_change_results(deployed):
    from zsad_runtime import Runtime

    case = deployed("winclip")
    one_by_one = Runtime(case.bundle, batch_size=1).detect(case.images)
    for a, b in zip(one_by_one, case.got):
        np.testing.assert_allclose(a.grid_map, b.grid_map, rtol=0, atol=1e-5)
        assert a.verdict == b.verdict


def test_every_preset_is_exported_or_refused_with_the_reason(runtime_data, tmp_path):
    """A new preset must join the parity cases or the refusals."""
    from zsad.deploy import export_bundle

    assert set(list_presets()) == EXPORTED_PRESETS | set(REFUSED_PRESETS)
    layers = {"layers": (1, 2, 3, 4)}
    options = {"musc": {"backbone": "tiny-clip", "pretrained": None, "input_size": 64, **layers},
               "musc-dinov2": {"backbone": "tiny-dinov2", "input_size": 56, **layers},
               "zsad": {"backbone": "tiny-clip", "pretrained": None, "input_size": 64, **layers}}
    for name, reason in REFUSED_PRESETS.items():
        detector = make_detector(Spec(name, options[name]))
        with pytest.raises(ZsadError, match=f"{reason}.*(zsad detect|per-image method|export one method)"):
            export_bundle(detector, tmp_path / name)
        assert not (tmp_path / name).exists()
