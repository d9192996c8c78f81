"""Evidence planning, reference memories and fusion through the Detector, on the tiny random backbones."""
import numpy as np
import pytest

from zsad.data.images import load_image
from zsad.config import build_config
from zsad.detector import Detector
from zsad.errors import ZsadError
from zsad.scoring.fewshot import reference_tokens
from zsad.scoring.fusion import fuse
from zsad.scoring.reference import ReferenceMemory


@pytest.fixture(scope="module")
def clip_detector():
    return Detector("tiny-clip", object_name="pill")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [(rng.random((48, 48, 3)) * 255).astype(np.uint8) for _ in range(10)]


def test_auto_plan_uses_the_strongest_evidence_the_inputs_allow(clip_detector):
    assert clip_detector.plan_evidence(1, has_references=False) == ["text"]
    assert clip_detector.plan_evidence(8, has_references=False) == ["mutual"]
    assert clip_detector.plan_evidence(2, has_references=True) == ["fewshot"]
    assert clip_detector.plan_evidence(8, has_references=True) == ["fewshot"]
    dino = Detector("tiny-dinov2")
    assert dino.plan_evidence(10, has_references=False) == ["mutual"]
    with pytest.raises(ZsadError, match="no evidence available for 1 image"):
        dino.plan_evidence(1, has_references=False)


def test_fuse_plans_every_evidence_the_inputs_allow():
    fused = Detector("tiny-clip", fuse=True)
    assert fused.plan_evidence(1, has_references=False) == ["text"]
    assert fused.plan_evidence(8, has_references=False) == ["text", "mutual"]
    assert fused.plan_evidence(2, has_references=True) == ["text", "fewshot"]
    assert Detector("tiny-dinov2", fuse=True).plan_evidence(10, has_references=True) == ["fewshot", "mutual"]


def test_explicit_methods_explain_what_is_missing():
    with pytest.raises(ZsadError, match="needs good reference images"):
        Detector("tiny-clip", method="fewshot").plan_evidence(4, has_references=False)
    with pytest.raises(ZsadError, match="at least 3 test images"):
        Detector("tiny-clip", method="mutual").plan_evidence(2, has_references=False)
    with pytest.raises(ZsadError, match="no text tower"):
        Detector("tiny-dinov2", method="text").plan_evidence(2, has_references=False)
    with pytest.raises(ZsadError, match="unknown method"):
        Detector("tiny-clip", method="magic")


def test_fuse_combines_all_evidence_and_says_which(images):
    clip_detector = Detector("tiny-clip", object_name="pill", fuse=True)
    references = images[:3]
    results = clip_detector.detect(images[3:], references=references)
    assert all(list(r.evidence) == ["text", "fewshot"] for r in results)
    big = clip_detector.detect(images, references=references)
    assert list(big[0].evidence) == ["text", "fewshot", "mutual"]
    # each evidence's own score equals that scorer run alone, and the fused score equals fusing them by hand
    alone = {
        method: Detector("tiny-clip", object_name="pill", method=method).detect(images, references=references)
        for method in ("text", "fewshot", "mutual")
    }
    for method, results_alone in alone.items():
        np.testing.assert_allclose([r.evidence[method].score for r in big], [r.score for r in results_alone],
                                   rtol=1e-5, atol=1e-6)
    from zsad.scoring.base import AnomalyMaps
    import torch

    evidence = [AnomalyMaps(torch.tensor(np.stack([r.grid_map for r in rs])), torch.tensor([r.score for r in rs]), m)
                for m, rs in alone.items()]
    np.testing.assert_allclose([r.score for r in big], fuse(evidence).scores.numpy(), rtol=1e-5, atol=1e-5)


def test_memory_save_load_and_mismatch(tmp_path, images):
    detector = Detector("tiny-dinov2", method="fewshot")
    memory = detector.build_memory(images[:3])
    path = tmp_path / "memory.safetensors"
    memory.save(path)
    direct = detector.detect(images[3:6], references=memory)
    from_file = detector.detect(images[3:6], references=path)
    assert [r.score for r in direct] == pytest.approx([r.score for r in from_file], abs=1e-6)
    other = Detector("tiny-dinov2", method="fewshot", input_size=112)
    with pytest.raises(ZsadError, match="input_size"):
        other.detect(images[3:6], references=path)


def test_leave_one_out_threshold_gives_single_images_a_verdict(images):
    detector = Detector("tiny-dinov2", method="fewshot")
    memory = detector.build_memory(images[:3])
    loo = float(memory.meta["normal_score_max"])
    # recompute: each reference against a memory of the other two
    tokens = reference_tokens(detector.config.scorer("fewshot"), detector.context,
                              detector.extract([load_image(i) for i in images[:3]]))
    expected = max(
        float(ReferenceMemory.build(tokens[[j for j in range(3) if j != i]], detector.config.reference)
              .score(tokens[i : i + 1]).scores[0])
        for i in range(3)
    )
    assert loo == pytest.approx(expected, rel=1e-5)
    result = detector.detect([images[5]], references=memory)[0]
    assert result.threshold == pytest.approx(loo) and result.is_anomalous == (result.score >= loo)


def test_rotations_add_rotated_references(images):
    plain = Detector("tiny-dinov2", method="fewshot").build_memory(images[:2])
    config = build_config(backbone="tiny-dinov2", method="fewshot", rotations=True)
    rotated = Detector(config=config).build_memory(images[:2])
    assert rotated.source_patches == 4 * plain.source_patches


def test_a_bad_reference_is_skipped_with_a_warning(tmp_path, images):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    detector = Detector("tiny-dinov2", method="fewshot")
    with pytest.warns(UserWarning, match="reference skipped: .*bad.png"):
        memory = detector.build_memory([bad, images[0], images[1]])
    assert memory.source_patches == 2 * 16 * 16
    with pytest.raises(ZsadError, match="no usable reference"):
        with pytest.warns(UserWarning):
            detector.build_memory([bad])
