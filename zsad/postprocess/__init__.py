"""Post-processing: from patch-grid maps to per-image maps at the original resolution.

``PostprocessConfig`` (here, torch-free) says how: Gaussian sigma, upsampling corners, where smoothing happens and
its border. A scorer declares its *default* (its config's ``default_postprocess``: AnomalyCLIP's official scipy
Gaussian, WinCLIP's none); fields a preset, an adapter or the user set override it, and the result records what
ran. ``MapPostprocess`` (numpy; ``zsad_runtime.postprocess``, shared with the torch-free runtime) applies it to a
result's grid map; ``maps`` holds the tensor versions training uses (``smooth``, ``gaussian_blur``), loaded on first
use.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from zsad_runtime.postprocess import PADDINGS, SMOOTH_AT, MapPostprocess

from zsad.config_fields import setting
from zsad.errors import ZsadError
from zsad.registry import lazy_exports


@dataclass(frozen=True)
class PostprocessConfig:
    """How grid maps become image maps. A field left None takes the running scorer's default (``over``)."""

    sigma: float | None = setting(None, help="Gaussian sigma in px of the smoothed map, 0 = none (default: the "
                                             "scorer's own, 4 for most)", metavar="PX")
    align_corners: bool | None = setting(None, help="bilinear upsampling with align_corners (MuSc's official code: "
                                                    "true; default: the scorer's own, false for most)")
    smooth_at: str | None = setting(
        None, choices=SMOOTH_AT, help="where maps are smoothed: input (at the backbone's input size, then resized) or "
                                      "original (upsampled straight to the image and smoothed there: AnomalyDINO)")
    padding: str | None = setting(
        None, option="gaussian_padding", choices=PADDINGS,
        help="Gaussian border: mirror (d c b | a b c d) or symmetric (c b a | a b c d, scipy's default)")

    def __post_init__(self) -> None:
        if self.sigma is not None and not (0 <= self.sigma < float("inf")):
            raise ZsadError(f"sigma {self.sigma} must be a finite number >= 0 (0 = no smoothing)")
        if self.smooth_at is not None and self.smooth_at not in SMOOTH_AT:
            raise ZsadError(f"smooth_at {self.smooth_at!r} must be one of {', '.join(SMOOTH_AT)}")
        if self.padding is not None and self.padding not in PADDINGS:
            raise ZsadError(f"gaussian_padding {self.padding!r} must be one of {', '.join(PADDINGS)}")

    def over(self, default: "PostprocessConfig") -> "PostprocessConfig":
        """These settings where set, ``default``'s elsewhere."""
        return replace(default, **{f.name: getattr(self, f.name) for f in fields(self)
                                   if getattr(self, f.name) is not None})

    def given(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


# zsad's default for every scorer that declares none: bilinear to the input size, Gaussian sigma 4 px there.
DEFAULT_POSTPROCESS = PostprocessConfig(sigma=4.0, align_corners=False, smooth_at="input", padding="mirror")

_lazy = lazy_exports(__name__, {
    "maps": ("gaussian_blur", "smooth"),
})
__all__ = ["DEFAULT_POSTPROCESS", "MapPostprocess", "PADDINGS", "PostprocessConfig", "SMOOTH_AT", *_lazy]
