"""Names for discovered types from an LLM: a short name and a one-sentence description per type.

What the model is sent: facts about the type's regions (how many images and regions, where the regions lie, how
large and how elongated they are, how firmly they belong to the type) and the defect phrases CLIP found closest
(with their similarities; none without a text space). Never file names (a file name may carry a label or a
folder's name, and naming a cluster after it would be reading the answer) and never raw images unless the user
sends images (``--llm-images`` with a model that accepts them): then the type's most typical crops go along.

The safeguards are the reasoning layer's (``zsad.reasoning.llm``): the facts go into the prompt only as a quoted
data block (``quote_data``) that the system message declares to be data; the reply is validated against the
``TypeName`` schema with one repair round (``LLM.complete_json``); the name then passes the phrase hygiene of
``naming.apply_namer``. When the model fails (unreachable, invalid twice), ``ReasoningError`` propagates to
``apply_namer``, which keeps the vocabulary (or numbered) name and records the error in the type.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from PIL import Image

from zsad.discovery.naming import TypeFacts
from zsad.explain.regions import position_words

SAMPLE_REGIONS = 12  # region facts sent per type, most typical first
SAMPLE_IMAGES = 4  # crops sent per type when images are allowed
NAME_TASK = (
    "You name one group of defects that an anomaly detector found, without labels, on images of one product. You "
    "get facts about the group's regions: how many images and regions, where the regions lie, their size as a "
    "share of the image, their shape, how firmly each region belongs to the group, and the defect phrases a "
    "vision-language model found closest to the group (with cosine similarities; low or close values mean it "
    "was unsure). Give a short defect name (one to four words, lowercase, no quotes) and one sentence that "
    "describes this type of defect for an inspector. Use only the facts given; when they do not say what the "
    "defect is, name it by where it lies and how large it is (for example 'small spot, upper left')."
)


@lru_cache(maxsize=1)
def type_name_schema():
    """The answer: ``name`` (1-60 characters) and ``description`` (one sentence, 1-300 characters)."""
    from pydantic import BaseModel, Field

    class TypeName(BaseModel):
        name: str = Field(min_length=1, max_length=60, description="short defect name, one to four words")
        description: str = Field(min_length=1, max_length=300, description="one sentence describing the defect")

    return TypeName


def region_facts(region: dict) -> dict[str, Any]:
    """What one region says about its defect, from a ``RegionType.to_dict()`` record (no file name)."""
    x0, y0, x1, y1 = region["region_box"]
    width, height = max(1, x1 - x0), max(1, y1 - y0)
    return {
        "position": position_words(*region["centre"]),
        "area_percent": round(100 * float(region["area_fraction"]), 3),
        "size_px": [width, height],
        "elongation": round(max(width, height) / min(width, height), 2),
        "membership": round(float(region["probability"]), 3),
    }


def type_facts(facts: TypeFacts, object_name: str) -> dict[str, Any]:
    """The data block of one type: counts, mean score, typical location and area, sampled region facts, and the
    closest vocabulary phrases."""
    regions = sorted(facts.regions, key=lambda r: -float(r["probability"]))[:SAMPLE_REGIONS]
    return {
        "object": object_name,
        "images": facts.count,
        "regions": len(facts.regions),
        "mean_anomaly_score": None if facts.mean_score is None else round(float(facts.mean_score), 4),
        "typical_location": facts.location,
        "mean_area_percent": round(100 * float(facts.mean_area), 3),
        "closest_phrases": [{"phrase": p, "similarity": round(float(s), 4)} for p, s in facts.candidates],
        "region_samples": [region_facts(r) for r in regions],
    }


class LLMNamer:
    """``TypeFacts -> (name, description)`` with an LLM (``zsad.reasoning.llm.LLM``); raises ``ReasoningError``
    when the model gives no valid answer (``apply_namer`` records it and keeps the earlier name).

    load: ``image name -> PIL image``, used only with ``send_images`` to crop the type's most typical regions."""

    source = "llm"

    def __init__(self, llm, object_name: str = "object", send_images: bool = False,
                 load: Callable[[str], Image.Image] | None = None):
        self.llm = llm
        self.object_name = object_name
        self.send_images = bool(send_images and load is not None and llm.supports_images)
        self.load = load

    def messages(self, facts: TypeFacts) -> list[dict]:
        from zsad.reasoning.llm import quote_data, system_message

        note = " The images are crops around the type's most typical regions." if self.send_images else ""
        return [system_message(NAME_TASK, type_name_schema()),
                {"role": "user", "content": "Facts about the group:\n" + quote_data("defect_type", type_facts(
                    facts, self.object_name)) + note}]

    def crops(self, facts: TypeFacts) -> list[Image.Image]:
        regions = sorted(facts.regions, key=lambda r: -float(r["probability"]))[:SAMPLE_IMAGES]
        return [self.load(r["image"]).convert("RGB").crop(tuple(r["box"])) for r in regions]

    def __call__(self, facts: TypeFacts) -> tuple[str, str]:
        extra = {"images": self.crops(facts)} if self.send_images else {}
        answer = self.llm.complete_json(self.messages(facts), type_name_schema(), **extra)
        return answer.name, answer.description
