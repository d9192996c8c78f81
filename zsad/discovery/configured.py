"""Discovery as ``DiscoverySettings`` say: the namer chosen (``naming``), the pipeline run, the choice recorded.

One road for every face: ``Detector.discover``, ``zsad discover``, ``zsad detect --discover`` and ``zsad eval
--discover`` all call ``discover_configured``, so a setting means the same everywhere.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from zsad.discovery.naming import Namer
from zsad.discovery.pipeline import Discovery, ImageSource, discover, load_result
from zsad.discovery.settings import DiscoverySettings
from zsad.errors import ZsadError
from zsad.results import AnomalyResult


def check_naming(settings: DiscoverySettings, llm, flag: str = "--naming") -> bool:
    """Whether an LLM is there to name types; ``naming=llm`` without one is an error that says how to configure it
    (faces call this before the run with their own flag's name, so the user learns it before waiting for
    detection)."""
    usable = llm is not None and llm.available
    if settings.naming == "llm" and not usable:
        raise ZsadError(f"{flag} llm needs an LLM: give --llm-base-url and --llm-model (or --llm-backend)")
    return usable


def choose_namer(settings: DiscoverySettings, llm=None, *, object_name: str = "object", send_images: bool = False,
                 load: Callable[[str], Image.Image] | None = None) -> Namer | None:
    """The LLM namer when ``naming`` is ``llm``, or ``auto`` with an available LLM; else None (vocabulary names).
    ``naming=llm`` without an LLM is an error that says how to configure one."""
    if settings.naming == "vocabulary" or not check_naming(settings, llm):
        return None
    from zsad.discovery.naming_llm import LLMNamer

    return LLMNamer(llm, object_name, send_images=send_images, load=load)


def discover_configured(
    results: Sequence[AnomalyResult],
    backbone,
    settings: DiscoverySettings,
    *,
    llm=None,
    send_images: bool = False,
    object_name: str = "object",
    masks: Mapping[str, np.ndarray] | Sequence[np.ndarray | None] | None = None,
    images: ImageSource | None = None,
    namer: Namer | None = None,
) -> Discovery:
    """``discover`` with ``settings``; ``namer`` (a callable) overrides the one ``settings.naming`` chooses.
    ``backbone`` None clusters colour histograms (``features`` must then be ``auto`` or ``colour``)."""
    by_name = {r.name: r for r in results}
    if namer is None:
        namer = choose_namer(settings, llm, object_name=object_name, send_images=send_images,
                             load=lambda name: load_result(by_name[name], images))
    found = discover(results, backbone, masks=masks, images=images, object_name=object_name, namer=namer,
                     **settings.pipeline_options())
    found.settings["naming"] = settings.naming
    found.settings["namer"] = getattr(namer, "source", "namer") if namer is not None else None
    return found
