"""Type names from an LLM, against a local OpenAI-compatible server (real HTTP, the ``openai`` client): what is
sent (region facts as quoted data, never file names, images only when allowed), the validated answer, and the
fallback to the earlier name with the error recorded when the server fails."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from zsad.discovery.configured import discover_configured
from zsad.discovery.settings import DiscoverySettings
from zsad.discovery.writer import write_discovery
from zsad.reasoning.llm import LLMConfig, make_llm
from zsad.results import AnomalyResult

SIDE = 64


def _spot(colour, corner: bool) -> tuple[Image.Image, np.ndarray]:
    image = Image.new("RGB", (SIDE, SIDE), (128, 128, 128))
    grid = np.zeros((8, 8), np.float32)
    box = (4, 4, 20, 20) if corner else (40, 40, 60, 60)
    ImageDraw.Draw(image).rectangle(box, fill=colour)
    cells = (slice(0, 3), slice(0, 3)) if corner else (slice(5, 8), slice(5, 8))
    grid[cells] = 1.0
    return image, grid


@pytest.fixture(scope="module")
def lot():
    """Eight flagged images: four red spots upper left, four blue spots lower right (file names carry a secret)."""
    images, results = {}, []
    for i in range(8):
        image, grid = _spot((220, 30, 30) if i % 2 else (30, 30, 220), corner=bool(i % 2))
        name = f"secret_label_{i}.png"
        images[name] = image
        results.append(AnomalyResult(name, score=1.0 + i, is_anomalous=True, grid_map=grid,
                                     original_size=(SIDE, SIDE)))
    return results, images


def _llm(server, **overrides):
    config = LLMConfig(**{"backend": "openai", "model": "scripted", "base_url": server.base_url, "timeout": 2.0,
                          "max_retries": 1, "backoff": 0.0, **overrides})
    return make_llm(config, sleep=lambda s: None)


def _discover(lot, llm, send_images=False, naming="llm"):
    results, images = lot
    settings = DiscoverySettings(types=2, features="colour", naming=naming)
    return discover_configured(results, None, settings, llm=llm, send_images=send_images, object_name="tile",
                               images=lambda r: images[r.name])


def _by_location(body) -> str:
    content = body["messages"][1]["content"]
    text = content if isinstance(content, str) else content[0]["text"]
    where = "upper left" if '"typical_location": "upper left"' in text else "lower right"
    return json.dumps({"name": f"Spot, {where}", "description": f"A square spot in the {where} corner."})


def test_names_and_descriptions_come_from_the_llm_and_only_facts_are_sent(server, lot):
    server.default = _by_location
    found = _discover(lot, _llm(server))
    assert sorted(t.name for t in found.types) == ["spot, lower right", "spot, upper left"]
    assert all(t.named_by == "llm" and t.naming_error is None and t.description.endswith("corner.")
               for t in found.types)
    assert found.settings["naming"] == "llm" and found.settings["namer"] == "llm"
    assert len(server.requests) == 2  # one per type
    for body in server.requests:
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        assert "Answer with one JSON object only" in system and '"description"' in system
        assert isinstance(user, str) and "<<<DATA defect_type" in user  # quoted data, no image parts
        facts = json.loads(user.split("<<<DATA defect_type\n", 1)[1].split("\nDATA>>>", 1)[0])
        assert facts["object"] == "tile" and facts["images"] == 4 and len(facts["region_samples"]) == 4
        assert set(facts["region_samples"][0]) == {"position", "area_percent", "size_px", "elongation", "membership"}
        assert "secret_label" not in json.dumps(body)  # file names never reach the model


def test_images_are_sent_only_when_allowed_and_supported(server, lot):
    server.default = _by_location
    _discover(lot, _llm(server, supports_images=True), send_images=False)
    assert all(isinstance(b["messages"][1]["content"], str) for b in server.requests)
    server.requests.clear()
    _discover(lot, _llm(server, supports_images=True), send_images=True)
    for body in server.requests:
        parts = body["messages"][1]["content"]
        urls = [p for p in parts if p.get("type") == "image_url"]
        assert 1 <= len(urls) <= 4 and all(p["image_url"]["url"].startswith("data:image/png") for p in urls)


def test_a_failing_server_keeps_the_numbered_names_and_records_why(server, lot, tmp_path):
    server.default = None
    server.script = [("status", 500)] * 4  # two attempts per type, both types
    with pytest.warns(UserWarning, match="type namer failed"):  # the breaker (tested in tests/reasoning) stays shut
        found = _discover(lot, _llm(server, max_failures=10))
    assert [t.name for t in found.types] == ["type 1", "type 2"]
    assert all(t.named_by == "numbered" and "failed after 2 attempt(s)" in t.naming_error for t in found.types), \
        [t.naming_error for t in found.types]
    document = json.loads(write_discovery(found, tmp_path)["types"].read_text())
    assert all("failed after 2 attempt(s)" in t["naming_error"] for t in document["types"])


def test_an_invalid_answer_gets_one_repair_round_then_falls_back(server, lot):
    server.script = [("reply", '{"name": ""}'), ("reply", "not json")] * 2
    with pytest.warns(UserWarning):
        found = _discover(lot, _llm(server, max_failures=10))
    assert len(server.requests) == 4  # answer + repair, per type
    assert "rejected" in server.requests[1]["messages"][-1]["content"]
    assert all("no valid TypeName (one repair round at most)" in t.naming_error for t in found.types), \
        [t.naming_error for t in found.types]


def test_auto_names_with_an_llm_and_vocabulary_without(server, lot):
    server.default = _by_location
    assert all(t.named_by == "llm" for t in _discover(lot, _llm(server), naming="auto").types)
    assert all(t.named_by == "numbered" for t in _discover(lot, _llm(server), naming="vocabulary").types)
    assert all(t.named_by == "numbered" for t in _discover(lot, None, naming="auto").types)


def test_duplicate_llm_names_are_numbered(server, lot):
    server.default = lambda body: json.dumps({"name": "spot", "description": "A spot."})
    assert [t.name for t in _discover(lot, _llm(server)).types] == ["spot", "spot 2"]
