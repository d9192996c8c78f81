"""CLI options -> ReasoningSetup, and the hooks used as the Detector will use them (offline and with an LLM)."""
import argparse
import json

import numpy as np
import pytest
import torch

from zsad.errors import ZsadError
from zsad.explain import top_regions
from zsad.config import settings_table
from zsad.config_fields import add_flags, given_options
from zsad.reasoning.options import reasoning_setup
from zsad.results import AnomalyResult, EvidenceScore
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory

DEFINE = "cracks, missing caps and stains on the label are defects; small colour differences and reflections are normal"


def parse(*argv):
    """The reasoning flags as ``zsad detect`` generates them, parsed into the setup the detector builds."""
    from zsad.config import build_config

    table = settings_table()
    parser = argparse.ArgumentParser()
    add_flags(parser, table, only=lambda item: item.section == ("reasoning",) or item.option == "explainer")
    config = build_config(keep_none=True, **given_options(parser.parse_args(list(argv)), table))
    return reasoning_setup(config.reasoning, config.explainer)


def run(setup, backbone, object_name="bottle"):
    """What the Detector does with the hooks: transform -> reference scoring, explain, apply the verdict."""
    torch.manual_seed(0)
    refs = torch.rand(2, 3, backbone.input_size, backbone.input_size)
    tests = refs.clone()[:1].repeat(2, 1, 1, 1)
    tests[1, :, 8:24, 8:24] = 1.0  # a bright square: the planted defect
    with torch.inference_mode():
        f_ref, f_test = backbone(refs), backbone(tests)
    transform = setup.feature_transform(backbone, object_name)
    if transform is not None:
        f_ref, f_test = transform(f_ref), transform(f_test)
    maps = ReferenceMemory.build(f_ref.patch_tokens, ReferenceConfig()).score(f_test.patch_tokens)
    explainer = setup.explainer(backbone, object_name)
    out = []
    threshold = float(maps.scores.mean())
    for i in range(2):
        name = f"img{i}.png"
        explainer.observe(name, f_test, i)
        grid = maps.maps[i].numpy()
        size = (backbone.input_size, backbone.input_size)
        r = AnomalyResult(name=name, score=float(maps.scores[i]), is_anomalous=bool(maps.scores[i] > threshold),
                          threshold=threshold, grid_map=grid, original_size=size,
                          evidence={"fewshot": EvidenceScore(float(maps.scores[i]), float(grid.max()), float(grid.mean()))})
        r.pixel_threshold = float(np.percentile(maps.maps.numpy(), 90))
        r.regions = tuple(top_regions(grid, r.pixel_threshold, size))
        r.explanation = explainer.explain(r, list(r.regions))
        setup.apply_verdict(r)
        out.append(r)
    return out


def test_offline_definition_end_to_end(tiny_clip):
    setup = parse("--define", DEFINE)
    assert setup.llm is None and setup.explain == "rules"
    assert setup.definition.defects == ["cracks", "missing caps", "stains on the label"]
    head = setup.text_head(tiny_clip)
    assert head.describe()["definition"]["normal_variations"] == ["small colour differences", "reflections"]
    assert head.embeddings("bottle").shape == (2, tiny_clip.embed_dim)
    normal, anomalous = run(setup, tiny_clip)
    assert anomalous.is_anomalous and not normal.is_anomalous
    assert anomalous.reasoning["rule"] and anomalous.reasoning["region"] == "R1"
    assert "breaks rule A" in anomalous.explanation and "region R1" in anomalous.explanation
    assert anomalous.reasoning["final_verdict"] == "numeric"
    record = json.loads(json.dumps(setup.describe()))
    assert record["definition"]["defects"][0] == "cracks" and "concept subspace applied" in record["notes"][0]


def test_llm_setup_with_local_server(tiny_clip, server, monkeypatch):
    monkeypatch.setenv("ZSAD_KEY", "sk-do-not-write")

    def default(body):
        system = body["messages"][0]["content"]
        if "Extract short visual noun phrases" in system:
            return json.dumps({"defects": ["crack", "missing cap"], "normal_variations": ["colour difference"]})
        evidence = body["messages"][1]["content"]
        region = "R1" if '"R1"' in evidence else "none"
        verdict = "anomalous" if region == "R1" and '"numeric_verdict": "anomalous"' in evidence else "normal"
        return json.dumps({"verdict": verdict, "rule": "A1" if verdict == "anomalous" else "N1", "region": region,
                           "explanation": f"Rule cited for region {region}."})

    server.default = default
    setup = parse("--define", DEFINE, "--llm-base-url", server.base_url, "--llm-model", "scripted",
                  "--llm-api-key-env", "ZSAD_KEY", "--verdict", "llm")
    assert setup.definition.parser == "llm" and setup.explain == "llm"
    normal, anomalous = run(setup, tiny_clip)
    assert anomalous.reasoning["source"] == "llm" and anomalous.reasoning["rule_id"] == "A1"
    assert anomalous.reasoning["region"] == "R1" and anomalous.reasoning["final_verdict"] == "llm"
    assert anomalous.reasoning["rule"] == "a bottle with crack is anomalous (user definition)"
    assert "sk-do-not-write" not in json.dumps(setup.describe())


def test_option_errors():
    with pytest.raises(ZsadError, match="needs an LLM"):
        parse("--explain", "llm")
    with pytest.raises(ZsadError, match="define-attend"):
        parse("--define", "cracks are defects", "--define-attend", "gain:x")
    assert parse().explain == "factual" and parse().describe() == {"explain": "factual", "verdict": "numeric"}
