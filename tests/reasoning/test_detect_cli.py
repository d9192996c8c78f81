"""``zsad detect --define ... --llm-base-url ...`` end to end: the scripted local server answers, and every
anomalous image's explanation names a rule and a region (issue: LLM reasoning layer, CLI check)."""
from __future__ import annotations

import json

import pytest

from zsad.cli.main import main


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("llm-cli")
    generate_dataset(root, categories=["pill"], n_train=4, n_test_good=10, n_test_defect=1, size=96, seed=0)
    return root / "pill"


def test_detect_with_a_definition_and_a_local_llm_explains_every_anomaly(batch, tmp_path, server, capsys):
    def answer(body):
        system = body["messages"][0]["content"]
        if "Extract short visual noun phrases" in system:
            return json.dumps({"defects": ["hole", "stain"], "normal_variations": ["colour difference"]})
        evidence = body["messages"][1]["content"]
        anomalous = '"numeric_verdict": "anomalous"' in evidence
        region = "R1" if '"R1"' in evidence else "none"
        return json.dumps({"verdict": "anomalous" if anomalous else "normal", "rule": "A1" if anomalous else "N1",
                           "region": region, "explanation": f"rule applied to region {region}"})

    server.default = answer
    out = tmp_path / "out"
    code = main(["detect", str(batch / "test"), "--references", str(batch / "train" / "good"),
                 "--backbone", "tiny-dinov2", "--layers", "1", "--input-size", "336", "--object", "pill",
                 "--define", "holes and stains are defects; colour differences are normal",
                 "--llm-base-url", server.base_url, "--llm-model", "scripted", "--explain", "llm",
                 "--out", str(out)])
    assert code == 0
    assert "definition understood as" in capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["ran"]["reasoning"]["definition"]["defects"] == ["hole", "stain"]
    anomalous = [r for r in report["results"] if r["verdict"] == "anomalous"]
    assert anomalous, "the tiny few-shot setting flags planted defects; nothing to explain otherwise"
    for record in anomalous:
        reasoning = record["reasoning"]
        assert reasoning["source"] == "llm" and reasoning["rule"] and reasoning["region"] not in (None, "", "none")
        assert record["regions"], record["name"]
    assert len(server.requests) >= len(report["results"])
