"""Definitions work mechanically, on a toy vision-language model whose text and image towers share colour directions.

References: red objects. Test images: another red object (normal), a blue object (differs only in colour), a red
object with a scratch (a real defect). Scores: the few-shot reference scorer (cosine, max) on the features, before
and after the definition's concept transform; the text head's P(anomalous) on the CLS with and without the
definition's prompts. The numbers are printed (pytest -s) and reported in the branch's report.
"""
import torch

from zsad.reasoning.definition import (
    DefinitionHead, concept_subspace, definition_transform, parse_definition,
)
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory
from zsad.scoring.text import anomaly_probability


def reference_scores(toy, transform=None):
    vlm = toy.ToyVLM()
    refs = vlm.features([toy.make_image(toy.RED, seed) for seed in range(3)])
    tests = vlm.features([toy.make_image(toy.RED, 10), toy.make_image(toy.BLUE, 11),
                          toy.make_image(toy.RED, 12, scratch=True)])
    if transform is not None:
        refs, tests = transform(refs), transform(tests)
    memory = ReferenceMemory.build(refs.patch_tokens, ReferenceConfig(metric="cosine", image_score="max"))
    scores = memory.score(tests.patch_tokens).scores
    return dict(zip(("red", "blue", "red+scratch"), scores.tolist()))


def test_concept_subspace_recovers_the_colour_directions(toy):
    vlm = toy.ToyVLM()
    sub = concept_subspace(vlm.encode_text, ["small colour differences"])
    assert sub.rank == 3
    colour = torch.zeros(16, 3)
    colour[1, 0] = colour[2, 1] = colour[3, 2] = 1
    # the subspace is (nearly) the image tower's colour dims 1-3: the cosines of the principal angles are close to
    # 1 (not exactly: normalising the prompt embeddings tilts it slightly toward the object direction, dim 0) ...
    cosines = torch.linalg.svdvals(sub.basis.T.float() @ colour)
    assert cosines.min() > 0.9
    # ... and leaves the scratch texture direction (dim 4) and the other words' dims (8-15) alone
    assert sub.basis[4].abs().max() < 1e-6 and sub.basis[8:].abs().max() < 1e-6


def test_definition_normal_lowers_defect_raises(toy):
    vlm = toy.ToyVLM()
    baseline = reference_scores(toy)
    normal_def = parse_definition("small colour differences are normal")
    defect_def = parse_definition("colour changes are defects")
    ignore = definition_transform(vlm, normal_def)
    attend = definition_transform(vlm, defect_def)
    soft = definition_transform(vlm, defect_def, attend_gain=4.0)
    ignored, attended, softened = (reference_scores(toy, t) for t in (ignore, attend, soft))
    print("\nreference scores (cosine distance, max over patches)")
    for label, s in (("baseline", baseline), ("colour is normal (ignore)", ignored),
                     ("colour is a defect (attend, LAFT projection)", attended),
                     ("colour is a defect (attend, gain 4)", softened)):
        print(f"  {label:48s} " + "  ".join(f"{k}={v:.4f}" for k, v in s.items()))
    # the image that differs only in colour: lower when colour is declared normal, higher when a defect
    assert ignored["blue"] < 0.1 * baseline["blue"]
    assert attended["blue"] > 2 * baseline["blue"] and softened["blue"] > 2 * baseline["blue"]
    # declaring colour normal leaves the scratch detected: it now outranks the colour change
    assert baseline["blue"] > baseline["red+scratch"] * 0.5 and ignored["red+scratch"] > 5 * ignored["blue"]
    assert ignored["red+scratch"] > 0.5 * baseline["red+scratch"]
    # declaring colour a defect makes it outrank the scratch
    assert attended["blue"] > attended["red+scratch"]


def test_definition_prompts_move_the_text_score(toy):
    vlm = toy.ToyVLM()
    blue = vlm.features([toy.make_image(toy.BLUE, 11)])
    base = DefinitionHead(vlm, parse_definition("scratches are defects"))
    as_defect = DefinitionHead(vlm, parse_definition("scratches and blue colour are defects"))
    as_normal = DefinitionHead(vlm, parse_definition("scratches are defects; blue colour is normal"))
    p = {name: float(anomaly_probability(blue.cls, head.embeddings("object"), 0.07))
         for name, head in (("base", base), ("blue defect", as_defect), ("blue normal", as_normal))}
    print("\ntext head P(anomalous) of the blue image:", {k: round(v, 4) for k, v in p.items()})
    assert p["blue normal"] < p["base"] < p["blue defect"]
