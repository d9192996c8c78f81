"""What the writers of one run share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class RunOutput:
    """The output folder of one run, the run description (writers may add to it, e.g. the overlays' colour
    range), and how to re-read an image for its overlay (``load_image(result) -> PIL.Image``; None: no overlays).
    ``journal`` (a ``zsad.outputs.ScoreJournal``): the folder's journal, which logs each overlay with what it shows;
    an overlay already in the folder is kept only when its log entry shows the same (an interrupted run's)."""

    out_dir: Path
    run_info: dict[str, Any] = field(default_factory=dict)
    load_image: Callable[[Any], Any] | None = None
    progress: bool = False
    journal: Any = None
