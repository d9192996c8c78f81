"""The demo's "Group by defect type": the run's anomalous images grouped into types, the gallery ordered by type.

Discovery (``Detector.discover``) runs with the run's own detector, taken from the cache (no model load), on the
results the page holds; it embeds crops of the anomalous images, so it runs when grouping is switched on, not on
every redraw. Types belong to one set of anomalous images: moving the threshold drops them
(``session.apply_threshold``), and the page discovers again for the new set while grouping stays on.

Gallery order when grouped: type 1 (the type with most regions) first, each type's images by confidence, then the
anomalous images that gave no region, then the normal ones and the errors, in input order. Captions start with the
type's name. The page selects by gallery position, so ``result_index`` maps a position back to the result.
"""
from __future__ import annotations

from dataclasses import replace

from PIL import Image

from zsad.demo.session import DetectorCache, RunState, gallery

UNGROUPED = "no region"


def discover_types(cache: DetectorCache, state: RunState) -> RunState:
    """``state`` with its anomalous images' types (``state.discovery``), found with the run's detector."""
    if not any(r.ok for r in state.results):
        return replace(state, discovery=None)
    detector = cache.get(**state.detector_options)
    found = detector.discover(state.results, object_name=state.object_name or None)
    return replace(state, discovery=found)


def gallery_order(state: RunState) -> list[int]:
    """Result indices in gallery order (input order without types)."""
    if state.discovery is None:
        return list(range(len(state.results)))
    position = {r.name: i for i, r in enumerate(state.results)}
    found = state.discovery.by_image()
    order = []
    for kind in state.discovery.types:
        order += sorted((position[name] for name in kind.images if name in position),
                        key=lambda i: -found[state.results[i].name].confidence)
    grouped = set(order)
    rest = [i for i in range(len(state.results)) if i not in grouped]
    return order + [i for i in rest if state.results[i].is_anomalous] + \
        [i for i in rest if not state.results[i].is_anomalous]


def result_index(state: RunState, gallery_index: int) -> int:
    """The result shown at ``gallery_index``."""
    order = gallery_order(state)
    return order[min(max(0, int(gallery_index)), len(order) - 1)] if order else 0


def grouped_gallery(state: RunState) -> list[tuple[Image.Image, str]]:
    """The gallery (``session.gallery``) in type order, captions starting with the type (see the module doc)."""
    items = gallery(state)
    if state.discovery is None:
        return items
    found = state.discovery.by_image()
    out = []
    for i in gallery_order(state):
        picture, text = items[i]
        result = state.results[i]
        image = found.get(result.name)
        label = f"[{image.type_name}] " if image else (f"[{UNGROUPED}] " if result.is_anomalous else "")
        out.append((picture, label + text))
    return out


def types_text(state: RunState) -> str:
    """The types' names and counts (markdown), or a line saying why there are none; empty when not grouped."""
    found = state.discovery
    if found is None:
        return ""
    anomalous = sum(r.is_anomalous is True for r in state.results)
    if not found.types:
        return (f"**No defect types**: {anomalous} anomalous image(s) at this threshold and no anomalous region to "
                "group; lower the threshold to include more images.")
    how = "fixed" if found.k.method == "fixed" else f"number estimated by {found.k.method}"
    lines = [f"**{len(found.types)} defect type(s)** among {len(found.images)} anomalous image(s) ({how}):", "",
             "| # | type | images | typical location | mean area % |", "|---:|---|---:|---|---:|"]
    for kind in found.types:
        name = kind.name.replace("|", "/")
        lines.append(f"| {kind.index + 1} | {name} | {kind.count} | {kind.location} | {100 * kind.mean_area:.2f} |")
    return "\n".join(lines)
