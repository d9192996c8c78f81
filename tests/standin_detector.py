"""A small stand-in detector with the Detector's duck-typed surface (``detect``, ``backbone.name``,
``backbone.input_size``, ``config``, ``describe()``), for evaluation and report tests that must not depend on the
real detector's numbers: its map is the per-patch mean absolute deviation of the grey image from the image's median
(a planted defect stands out), its score the map's maximum, its threshold fixed at 0.08.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from zsad.results import AnomalyResult, EvidenceScore
from zsad.postprocess.maps import MapPostprocess

INPUT = 96
PATCH = 16
THRESHOLD = 0.08


class StandInBackbone(torch.nn.Module):
    name = "stand-in"
    input_size = INPUT
    layers = (1,)

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.arange(6, dtype=torch.float32))


class StandInDetector:
    def __init__(self, pretrained: str = "random"):
        self.backbone = StandInBackbone()
        self.config = SimpleNamespace(method="text", backbone=SimpleNamespace(name="stand-in", pretrained=pretrained))
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.calls: list[dict] = []
        self.postprocess = MapPostprocess(input_size=INPUT, sigma=2.0)

    def describe(self) -> dict:
        return {"method": "text", "preset": None, "postprocess": {"sigma": 2.0},
                "backbone": {"name": "stand-in", "pretrained": self.config.backbone.pretrained, "input_size": INPUT,
                             "layers": [1]}}

    @staticmethod
    def grid(path) -> np.ndarray:
        image = np.asarray(Image.open(path).convert("L").resize((INPUT, INPUT), Image.BILINEAR), np.float32) / 255
        side = INPUT // PATCH
        deviation = np.abs(image - np.median(image)).reshape(side, PATCH, side, PATCH).mean(axis=(1, 3))
        return deviation.astype(np.float32)

    def detect(self, paths, references=None, object_name=None, progress=False):
        self.calls.append({"paths": list(paths), "references": references, "object_name": object_name})
        out = []
        for path in paths:
            path = Path(path)
            try:
                with Image.open(path) as image:
                    size = image.size
                grid = self.grid(path)
            except Exception as error:  # noqa: BLE001 - one bad file becomes one error result
                out.append(AnomalyResult(name=path.name, path=str(path), error=f"{path}: {error}"))
                continue
            score = float(grid.max())
            out.append(AnomalyResult(
                name=path.name, path=str(path), score=score, is_anomalous=score >= THRESHOLD, threshold=THRESHOLD,
                threshold_rule="fixed", grid_map=grid, original_size=size, postprocess=self.postprocess,
                evidence={"text": EvidenceScore(score=score, map_max=float(grid.max()), map_mean=float(grid.mean()))},
            ))
        return out
