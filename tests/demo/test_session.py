"""The demo's callbacks without a browser: one row/overlay per image, the slider re-decides without detect(),
problems become messages."""
import csv

import numpy as np
import pytest

from zsad.demo.session import (
    SLIDER_RULE, DemoSettings, DetectorCache, RunRequest, apply_threshold, detail, gallery, slider_bounds, summary,
    table_rows, write_csv, run_detection,
)
from zsad.errors import ZsadError

SETTINGS = DemoSettings(backbone="tiny-clip", device="cpu", max_images=12, max_references=4)


class CountingFactory:
    """Builds real detectors and counts how often their detect() runs."""

    def __init__(self):
        self.detect_calls = 0
        self.built = []

    def __call__(self, **options):
        from zsad.detector import Detector

        detector = Detector(**options)
        real = detector.detect

        def detect(*args, **kwargs):
            self.detect_calls += 1
            return real(*args, **kwargs)

        detector.detect = detect
        self.built.append(options)
        return detector


@pytest.fixture(scope="module")
def factory():
    return CountingFactory()


@pytest.fixture(scope="module")
def cache(factory):
    return DetectorCache(size=2, factory=factory)


@pytest.fixture(scope="module")
def run(cache, examples):
    return run_detection(cache, RunRequest(images=examples[0][:9], object_name="pill"), SETTINGS)


def test_one_overlay_row_and_csv_line_per_image(run, tmp_path):
    assert len(run.results) == 9 and all(r.ok for r in run.results)
    pictures = gallery(run)
    assert len(pictures) == 9 and len(table_rows(run)) == 9
    assert [caption.split(":")[0] for _, caption in pictures] == [r.name for r in run.results]
    with open(write_csv(run, tmp_path)) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == [r.name for r in run.results]
    assert [float(row["score"]) for row in rows] == pytest.approx([r.score for r in run.results])


def test_threshold_moves_verdicts_without_detecting_again(run, factory):
    calls = factory.detect_calls
    scores = np.array([r.score for r in run.results])
    low, high, value = slider_bounds(run)
    assert low <= scores.min() and high >= scores.max() and low <= value <= high
    for threshold in (low, float(np.median(scores)), high):
        moved = apply_threshold(run, threshold)
        assert [r.is_anomalous for r in moved.results] == list(scores >= threshold)
        assert all(r.threshold == threshold and r.threshold_rule == SLIDER_RULE for r in moved.results)
        assert all(("anomalous:" if r.is_anomalous else "normal:") in r.explanation for r in moved.results)
        assert [row[3] for row in table_rows(moved)] == [r.verdict for r in moved.results]
        assert len(gallery(moved)) == 9
    everything, nothing = apply_threshold(run, low), apply_threshold(run, high)
    assert summary(everything).startswith("9 image(s): 9 anomalous") and "9 normal" in summary(nothing)
    # outlines follow the verdict: an anomalous image's overlay differs from the same image judged normal
    index = next(i for i, r in enumerate(run.results) if r.regions)
    a, b = gallery(everything)[index][0], gallery(nothing)[index][0]
    assert np.abs(np.asarray(a, float) - np.asarray(b, float)).sum() > 0
    picture, text, rules = detail(everything, index)
    assert picture is not None and "1." in text and "reasoning layer is off" in rules
    # the maps were not recomputed: the grids are the same objects, and detect() ran no more
    assert all(m.grid_map is r.grid_map for m, r in zip(everything.results, run.results))
    assert factory.detect_calls == calls


def test_model_is_loaded_once_per_settings(cache, examples, factory):
    before = len(factory.built)
    for _ in range(2):
        run_detection(cache, RunRequest(images=examples[0][:2], object_name="pill"), SETTINGS)
    assert len(factory.built) == before  # the module's first run already loaded this setting
    run_detection(cache, RunRequest(images=examples[0][:2], method="text"), SETTINGS)
    assert len(factory.built) == before + 1


def test_bad_file_is_a_message_and_the_others_are_scored(cache, examples, bad_png):
    state = run_detection(cache, RunRequest(images=[bad_png, *examples[0][:3]]), SETTINGS)
    assert [r.ok for r in state.results] == [False, True, True, True]
    assert any(note.startswith("broken.png:") and "PIL" in note for note in state.notes)
    assert len(gallery(state)) == 4 and table_rows(state)[0][3] == "error"
    only_bad = run_detection(cache, RunRequest(images=[bad_png]), SETTINGS)
    assert any("no image could be scored" in note for note in only_bad.notes)


@pytest.mark.parametrize("request_, message", [
    (RunRequest(images=[]), "no test images"),
    (RunRequest(images=["x.png"] * 13), "at most 12"),
    (RunRequest(images=["x.png"], references=["r.png"] * 5), "at most 4"),
    (RunRequest(images=["x.png"], method="fewshot"), "reference"),
])
def test_expected_problems_raise_zsad_errors(cache, examples, request_, message):
    if request_.images == ["x.png"]:
        request_.images = examples[0][:1]
    with pytest.raises(ZsadError, match=message):
        run_detection(cache, request_, SETTINGS)


def test_unavailable_weights_is_a_zsad_error(examples):
    cache = DetectorCache()
    with pytest.raises(ZsadError):
        run_detection(cache, RunRequest(images=examples[0][:1], backbone="ViT-B-16"), SETTINGS)


def test_a_definition_in_words_reaches_the_detector(cache, examples):
    state = run_detection(cache, RunRequest(images=examples[0][:2], definition="scratches are defects"), SETTINGS)
    assert all(r.ok for r in state.results)
    detector = next(reversed(cache._items.values()))
    assert detector.reasoning.definition.defects




def test_the_preset_sets_backbone_and_method_unless_changed_after(cache, factory, examples):
    """0.1: the page's Backbone and Method were always passed and beat the chosen preset (preset winclip silently
    ran text scoring; musc-dinov2 built a CLIP). Choosing a preset fills them with its own values, which are then
    not overrides; a value changed after choosing it is."""
    from zsad.demo.session import chosen_options, preset_choice, settings_text

    assert preset_choice("winclip") == {"backbone": "ViT-B-16-plus-240", "method": "winclip"}
    assert preset_choice("musc-dinov2") == {"backbone": "dinov2-large", "method": "mutual"}
    assert preset_choice(None) == {"backbone": "ViT-L-14-336", "method": "auto"}
    fresh = DemoSettings(device="cpu", preset="musc-dinov2")
    chosen = RunRequest(images=[], preset="musc-dinov2", backbone="dinov2-large", method="mutual")
    assert "backbone" not in chosen_options(chosen, fresh, "musc-dinov2")  # the preset's own: not an override
    assert "method" not in chosen_options(chosen, fresh, "musc-dinov2")
    changed = RunRequest(images=[], preset="musc-dinov2", backbone="tiny-dinov2", method="mutual")
    assert chosen_options(changed, fresh, "musc-dinov2")["backbone"] == "tiny-dinov2"
    # the whole way: preset winclip with the tiny CLIP swapped in runs WinCLIP, not text scoring
    request = RunRequest(images=examples[0][:3], preset="winclip", backbone="tiny-clip", method="winclip")
    state = run_detection(cache, request, SETTINGS)
    assert all(list(r.evidence) == ["winclip"] for r in state.results)
    assert state.settings["ran"]["scorers"] == ["winclip"] and state.settings["preset"] == "winclip"
    text = settings_text(state.settings)
    assert "**preset**: winclip" in text and "ran winclip" in text and "backbone.name: option" in text
