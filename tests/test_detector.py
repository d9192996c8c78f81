"""The Detector end to end on the tiny random CLIP: one result per input, errors kept per image."""
import numpy as np
import pytest
import torch
from PIL import Image

from zsad.detector import Detector
from zsad.errors import ZsadError


@pytest.fixture(scope="module")
def detector():
    return Detector("tiny-clip", object_name="pill")


def test_results_align_with_inputs_and_keep_original_sizes(detector, tmp_path):
    rng = np.random.default_rng(0)
    images = [(rng.random((40 + 10 * i, 60, 3)) * 255).astype(np.uint8) for i in range(3)]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray(images[0]).save(tmp_path / "good.png")
    sources = [images[0], tmp_path / "broken.png", images[1], tmp_path / "missing.png", tmp_path / "good.png", images[2]]
    results = detector.detect(sources)
    assert len(results) == len(sources)
    assert [r.ok for r in results] == [True, False, True, False, True, True]
    assert "broken.png" in results[1].error and "missing.png" in results[3].error
    for result, height in zip([results[0], results[2], results[5]], (40, 50, 60)):
        assert result.anomaly_map.shape == (height, 60)
        assert 0.0 <= result.score <= 1.0
        assert list(result.evidence) == ["text"]
        assert result.explanation
    # the same image as array and as file gives the same score
    assert results[4].score == pytest.approx(results[0].score, abs=1e-6)
    assert results[1].verdict == "error" and "not inspected" not in results[0].explanation


def test_scores_equal_the_text_scorer_on_extracted_features(detector, synth_root):
    from zsad.data.images import load_image

    paths = sorted((synth_root / "pill" / "test").rglob("*.png"))[:3]
    results = detector.detect(paths)
    features = detector.extract([load_image(p) for p in paths])
    from zsad.scoring.text import score_text

    direct = score_text(features, detector.text_head.embeddings("pill"), detector.config.text)
    np.testing.assert_allclose([r.score for r in results], direct.scores.numpy(), atol=1e-6)


def test_verdicts_follow_the_threshold(detector, synth_root):
    results = detector.detect(synth_root / "pill" / "test")
    assert len(results) == 4 + 5  # 4 good + one per defect type
    threshold = results[0].threshold
    assert all(r.threshold == threshold for r in results)
    assert all(r.is_anomalous == (r.score >= threshold) for r in results)
    fixed = Detector("tiny-clip", threshold=0.0).detect(synth_root / "pill" / "test")
    assert all(r.is_anomalous for r in fixed) and fixed[0].threshold_rule == "fixed 0"


def test_calibrate_sets_f1_max_threshold(detector, synth_root):
    from zsad.data.layouts.mvtec import mvtec_samples

    samples = mvtec_samples(synth_root)["pill"]
    local = Detector("tiny-clip")
    value = local.calibrate([s.path for s in samples], [s.label for s in samples])
    assert local.config.threshold.kind == "fixed" and local.config.threshold.value == value


def test_bad_options_are_clear():
    with pytest.raises(ZsadError, match="unknown precision"):
        Detector("tiny-clip", precision="fp8")
    with pytest.raises(ZsadError, match="unknown device"):
        Detector("tiny-clip", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ZsadError, match="CUDA is not available"):
            Detector("tiny-clip", device="cuda")
    with pytest.raises(ZsadError, match="batch size"):
        Detector("tiny-clip", batch_size=0)
