"""The demo's "Group by defect type" without a browser: types found with the run's cached detector, the gallery
ordered by type with the type in each caption, names and counts shown, selection and CSV follow, and a threshold
move drops the old types."""
import csv

import numpy as np
import pytest

from zsad.demo.grouping import discover_types, gallery_order, grouped_gallery, result_index, types_text
from zsad.demo.session import DemoSettings, DetectorCache, RunRequest, apply_threshold, detail, run_detection, write_csv

SETTINGS = DemoSettings(backbone="tiny-clip", device="cpu", max_images=12)


class CountingFactory:
    def __init__(self):
        self.built = 0

    def __call__(self, **options):
        from zsad.detector import Detector

        self.built += 1
        return Detector(**options)


@pytest.fixture(scope="module")
def grouped(examples):
    factory = CountingFactory()
    cache = DetectorCache(size=2, factory=factory)
    state = run_detection(cache, RunRequest(images=examples[0][:9], object_name="pill"), SETTINGS)
    median = float(np.median([r.score for r in state.results]))
    state = apply_threshold(state, median)  # about half the images anomalous
    return cache, factory, discover_types(cache, state)


def test_the_gallery_is_ordered_by_type_and_captions_name_it(grouped):
    cache, factory, state = grouped
    assert factory.built == 1  # the run's detector, not a second load
    found = state.discovery
    assert found.types and sum(t.count for t in found.types) == len(found.images)
    order = gallery_order(state)
    assert sorted(order) == list(range(9))
    typed = [state.results[i].name for i in order[:len(found.images)]]
    assert typed == [name for t in found.types for name in sorted(
        t.images, key=lambda n: -found.by_image()[n].confidence)]
    captions = [caption for _, caption in grouped_gallery(state)]
    by_name = found.by_image()
    for i, caption in zip(order, captions):
        result = state.results[i]
        if result.name in by_name:
            assert caption.startswith(f"[{by_name[result.name].type_name}] {result.name}:")
        elif result.is_anomalous:
            assert caption.startswith("[no region] ")
        else:
            assert caption.startswith(result.name)
    text = types_text(state)
    for kind in found.types:
        assert f"| {kind.index + 1} | {kind.name} | {kind.count} |" in text
    anomalous = sum(r.is_anomalous is True for r in state.results)
    assert f"among {len(found.images)} anomalous image(s)" in text and len(found.images) <= anomalous


def test_selection_and_csv_follow_the_grouping(grouped, tmp_path):
    _, _, state = grouped
    last = result_index(state, 8)
    assert last == gallery_order(state)[8]
    _, text, _ = detail(state, last)
    assert state.results[last].name in text
    with open(write_csv(state, tmp_path)) as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    by_name = state.discovery.by_image()
    assert {n: r["defect_type"] for n, r in rows.items() if r["defect_type"]} == {
        n: image.type_name for n, image in by_name.items()}


def test_a_threshold_move_drops_the_types_and_nothing_anomalous_says_so(grouped):
    cache, _, state = grouped
    moved = apply_threshold(state, max(r.score for r in state.results) + 1.0)
    assert moved.discovery is None and types_text(moved) == ""
    assert [c for _, c in grouped_gallery(moved)] == [c.split("] ", 1)[-1] for _, c in grouped_gallery(moved)]
    again = discover_types(cache, moved)
    assert again.discovery.types == [] and "No defect types" in types_text(again)
    assert gallery_order(again) == list(range(9))


def test_the_page_has_the_control(examples):
    pytest.importorskip("gradio")
    from zsad.demo.app import build_app

    app = build_app(DemoSettings(backbone="tiny-clip", device="cpu", examples=False))
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"group-types", "defect-types"} <= ids
