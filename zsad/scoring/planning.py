"""Which scorers a run uses: the one the user named, or for ``auto`` the strongest the inputs allow.

``auto`` without ``fuse`` runs a single published method, the strongest available (each scorer's ``strength``):
references -> few-shot; learned prompts -> AnomalyCLIP (it is unavailable to ``auto`` without them); a batch of
``min_mutual_batch`` or more -> mutual (MuSc); otherwise text scoring. So what the user gave explicitly decides
before the batch size does. With ``fuse`` every available automatic scorer runs and fusion combines them.

An option the user gave that the chosen evidence does not read is reported once (``unused_settings``), from the
declarations alone: a scorer reads its own config section and what its class lists in ``reads`` (the text-space
scorers: the text head and V-V attention; few-shot and WinCLIP: the references); a setting that some registered
scorer reads but none of the run's is unused. Settings no scorer claims (backbone, post-processing, verdict,
object name, ...) are read by every run. A scorer's ``decides`` fields are read by ``auto`` to choose it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from zsad.errors import ZsadError
from zsad.scoring.base import Scorer, ScorerContext, ScoringRun
from zsad.scoring.registry import SCORERS


@dataclass(frozen=True)
class Planned:
    """A scorer class chosen for a run, with its config."""

    cls: type[Scorer]
    config: Any

    @property
    def name(self) -> str:
        return self.cls.name

    def why_not(self, ctx: ScorerContext, run: ScoringRun) -> str | None:
        return self.cls.unavailable(self.config, ctx, run)

    def build(self, ctx: ScorerContext) -> Scorer:
        return self.cls(self.config, ctx)


def _planned(name: str, configs: Mapping[str, Any]) -> Planned:
    return Planned(SCORERS.get(name), configs.get(SCORERS.canonical(name)))


def plan(method: str, fuse: bool, configs: Mapping[str, Any], ctx: ScorerContext, run: ScoringRun) -> list[Planned]:
    """The scorers of a run (see the module docstring); a ``ZsadError`` saying why when none can run."""
    if method != "auto":
        chosen = _planned(method, configs)
        why = chosen.why_not(ctx, run)
        if why:
            raise ZsadError(why)
        return [chosen]
    candidates = [_planned(name, configs) for name in SCORERS.names()]
    candidates = [p for p in candidates if p.cls.in_auto]
    available = [p for p in candidates if p.why_not(ctx, run) is None]
    if not available:
        reasons = "; ".join(p.why_not(ctx, run) for p in candidates)
        raise ZsadError(f"no evidence available for {run.n_images} image(s) with backbone {ctx.backbone.name}: "
                        f"{reasons}")
    if fuse:
        return available
    return [max(available, key=lambda p: p.cls.strength)]


def fallback(method: str, fuse: bool, planned: list[Planned], configs: Mapping[str, Any], ctx: ScorerContext,
             run: ScoringRun) -> list[Planned]:
    """For ``auto`` with one batch-level scorer (mutual): the strongest per-image scorer, run beside it and used
    only if unreadable files leave too few images for the batch-level one."""
    if method != "auto" or fuse or all(p.cls.per_image for p in planned):
        return []
    candidates = [_planned(name, configs) for name in SCORERS.names()]
    usable = [p for p in candidates if p.cls.in_auto and p.cls.per_image and p.why_not(ctx, run) is None]
    return [max(usable, key=lambda p: p.cls.strength)] if usable else []


def unused_settings(given: list[str], running: list[str], auto: bool = False) -> dict[str, list[str]]:
    """The ``given`` settings (paths; ``references`` for the run's references) that no scorer in ``running`` reads
    while another registered scorer does (see the module docstring): path -> the scorers that would read it."""
    readers: dict[str, list[str]] = {}
    for name in SCORERS.names():
        cls, own = SCORERS.get(name), f"scorers.{SCORERS.canonical(name)}."
        for path in given:
            field = path.removeprefix(own) if path.startswith(own) else None
            if auto and field in cls.decides:
                readers.setdefault(path, []).append("auto")
            elif field is not None or path in cls.reads:
                readers.setdefault(path, []).append(name)
    return {path: names for path, names in readers.items() if "auto" not in names and not set(names) & set(running)}


def still_available(scorers: list[Scorer], run: ScoringRun, n_scored: int) -> list[Scorer]:
    """Scorers planned on the number of inputs, re-checked on the number that could be read: with unreadable
    files, ``auto`` drops an evidence the readable images no longer allow; a named method says why it cannot run."""
    if n_scored == run.n_images or n_scored == 0:
        return scorers
    actual = replace(run, n_images=n_scored)
    kept = []
    for scorer in scorers:
        why = scorer.unavailable(scorer.config, scorer.ctx, actual)
        if why and run.explicit:
            raise ZsadError(f"{why} ({run.n_images - n_scored} of {run.n_images} inputs could not be read)")
        if not why:
            kept.append(scorer)
    return kept
