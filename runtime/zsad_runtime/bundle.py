"""A deployment bundle: the folder ``zsad export`` writes and ``zsad-runtime`` runs, described by ``zsad-runtime.json``.

A bundle is self-describing: everything between an image file and an ``AnomalyResult`` that is not in the graph is
recorded here, with the values the exporting detector resolved, so the runtime reproduces ``zsad detect`` without
zsad's configuration code:

- ``graph``: its file(s) and their sha256, format (ONNX or OpenVINO IR), precision (fp32, or int8 weights), input
  and output names, the memory file when the reference memory is a graph input (``memory.npz``, one array per
  input), and the graph's own ``describe()`` (method, backbone, grid, the settings baked into it);
- ``preprocess``: input size, resize rule, mean and std (``zsad_runtime.preprocess``);
- ``postprocess``: the method's resolved post-processing and the input size (``MapPostprocess``'s fields);
- ``threshold``: the verdict rule (mad over each ``detect`` call's images, a fixed value, or conformal on the
  references' leave-one-out scores) and the evidence's natural threshold for calls too small for the batch rule:
  the runtime decides as zsad does, in numpy (``zsad_runtime.verdict``), rather than recording one number;
- ``masks``: the mask rule (mad over the call's patch values, or conformal on the references' leave-one-out patch
  scores); ``calibration_file``: those leave-one-out scores and maps (``calibration.npz``), for the conformal rules;
- ``fingerprints``: the preset, the adapter, the reference images and memory, the text rows, the backbone weights;
- ``settings``: every resolved setting of the exporting detector, as ``zsad detect`` records it in results.json;
- ``zsad_version`` and ``format_version``: a runtime refuses a bundle of a newer format.

The reader checks what it can before any image is read: the format, the files and their sha256, the fields.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsad_runtime.errors import BundleError
from zsad_runtime.postprocess import MapPostprocess
from zsad_runtime.preprocess import Preprocess
from zsad_runtime.verdict import MaskSpec, RuleSpec

BUNDLE_FILE = "zsad-runtime.json"
FORMAT = "zsad-runtime-bundle"
FORMAT_VERSION = 2  # 2: conformal rules, masks and the calibration file
GRAPH_FORMATS = {"onnx": ".onnx", "openvino": ".xml"}
PRECISIONS = ("fp32", "int8")
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class GraphSpec:
    """The graph of a bundle. ``file`` is the one an engine opens (.onnx or .xml); ``files`` maps every file of the
    graph and its memory (relative paths: the ONNX external-data file, the IR's .bin, memory.npz) to its sha256."""

    file: str
    format: str
    precision: str
    inputs: list[str]
    outputs: list[str]
    files: dict[str, str]
    memory_file: str | None = None
    describe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in GRAPH_FORMATS:
            raise BundleError(f"graph format {self.format!r} is not one of {', '.join(GRAPH_FORMATS)}")
        if self.precision not in PRECISIONS:
            raise BundleError(f"graph precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if list(self.outputs) != ["maps", "scores"]:
            raise BundleError(f"the graph's outputs are {list(self.outputs)}, not [maps, scores]: only per-image "
                              "scorer graphs run in the runtime")


@dataclass(frozen=True)
class Bundle:
    """What ``zsad-runtime.json`` holds (see the module docstring); ``root`` is the folder it was read from."""

    method: str
    graph: GraphSpec
    preprocess: Preprocess
    postprocess: MapPostprocess
    threshold: RuleSpec
    natural_threshold: float | None
    object_name: str
    fingerprints: dict[str, Any]
    settings: dict[str, Any]
    zsad_version: str
    explainer: str = "factual"
    masks: MaskSpec = field(default_factory=MaskSpec)
    calibration_file: str | None = None
    format_version: int = FORMAT_VERSION
    root: Path | None = field(default=None, compare=False)

    # -- writing (zsad export) ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "zsad_version": self.zsad_version,
            "method": self.method,
            "object_name": self.object_name,
            "graph": asdict(self.graph),
            "preprocess": {**asdict(self.preprocess), "mean": list(self.preprocess.mean),
                           "std": list(self.preprocess.std)},
            "postprocess": asdict(self.postprocess),
            "threshold": {**asdict(self.threshold), "natural": self.natural_threshold,
                          "decided": "over the images of each detect call, as zsad detect decides over its run "
                                     "(zsad_runtime.verdict); fixed: the value; conformal: the calibration file"},
            "masks": asdict(self.masks),
            "calibration_file": self.calibration_file,
            "explainer": self.explainer,
            "fingerprints": self.fingerprints,
            "settings": self.settings,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / BUNDLE_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")
        return path

    # -- reading (zsad-runtime) ---------------------------------------------------------------------------------

    @classmethod
    def read(cls, folder: str | Path, verify: bool = True) -> "Bundle":
        """The bundle in ``folder``; ``verify`` checks every recorded file's sha256 (a changed or truncated graph
        would run and give other numbers)."""
        folder = Path(folder)
        path = folder / BUNDLE_FILE
        if not folder.is_dir():
            raise BundleError(f"{folder}: no such folder; pass the folder `zsad export --out` wrote")
        if not path.is_file():
            raise BundleError(f"{folder}: no {BUNDLE_FILE}; pass the folder `zsad export --out` wrote")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{path}: not readable JSON ({error}); export the bundle again") from None
        bundle = cls.from_json(data, folder, where=str(path))
        bundle.check_files(verify)
        return bundle

    @classmethod
    def from_json(cls, data: dict[str, Any], root: Path | None = None, where: str = BUNDLE_FILE) -> "Bundle":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"{where}: not a zsad-runtime bundle description (format {FORMAT!r} expected)")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise BundleError(f"{where}: bundle format {version} was written by a newer zsad "
                              f"({data.get('zsad_version')}); this zsad-runtime reads format {FORMAT_VERSION}: "
                              "upgrade zsad-runtime")
        try:
            threshold = dict(data["threshold"])
            natural = threshold.pop("natural", None)
            threshold.pop("decided", None)
            return cls(
                method=str(data["method"]),
                graph=GraphSpec(**data["graph"]),
                preprocess=Preprocess(**{**data["preprocess"], "mean": tuple(data["preprocess"]["mean"]),
                                         "std": tuple(data["preprocess"]["std"])}),
                postprocess=MapPostprocess(**data["postprocess"]),
                threshold=RuleSpec(**threshold),
                natural_threshold=None if natural is None else float(natural),
                object_name=str(data["object_name"]),
                fingerprints=dict(data.get("fingerprints") or {}),
                settings=dict(data.get("settings") or {}),
                zsad_version=str(data["zsad_version"]),
                explainer=str(data.get("explainer", "factual")),
                masks=MaskSpec(**(data.get("masks") or {})),
                calibration_file=data.get("calibration_file"),
                format_version=version,
                root=root,
            )
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{where}: malformed ({type(error).__name__}: {error}); export the bundle "
                              "again") from None

    def check_files(self, verify: bool = True) -> None:
        if self.explainer != "factual":
            raise BundleError(f"{self.root}: explainer {self.explainer!r}; the runtime explains factually only")
        if self.natural_threshold is not None and not math.isfinite(self.natural_threshold):
            raise BundleError(f"{self.root}: natural threshold {self.natural_threshold} is not a finite number")
        for name, digest in self.graph.files.items():
            path = self.path(name)
            if not path.is_file():
                raise BundleError(f"{self.root}: {name} is missing; copy the whole bundle folder")
            if verify and sha256_file(path) != digest:
                raise BundleError(f"{path}: its sha256 differs from the one recorded at export (changed or "
                                  "truncated); copy the bundle again or export it again")
        if self.graph.file not in self.graph.files:
            raise BundleError(f"{self.root}: the graph file {self.graph.file} is not among the recorded files")
        conformal = self.threshold.kind == "conformal" or self.masks.kind == "conformal"
        if conformal and self.calibration_file not in self.graph.files:
            raise BundleError(f"{self.root}: a conformal rule without its calibration file among the recorded files; "
                              "export the bundle again")

    def path(self, name: str) -> Path:
        return (self.root or Path(".")) / name

    @property
    def graph_path(self) -> Path:
        return self.path(self.graph.file)

    def calibration(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The references' leave-one-out normal scores [k] and maps [k, h, w] (None without a calibration file)."""
        if self.calibration_file is None:
            return None
        with np.load(self.path(self.calibration_file), allow_pickle=False) as stored:
            if not {"normal_scores", "normal_maps"} <= set(stored.files):
                raise BundleError(f"{self.calibration_file} lacks normal_scores or normal_maps; export the bundle "
                                  "again")
            return (np.asarray(stored["normal_scores"], dtype=np.float32),
                    np.asarray(stored["normal_maps"], dtype=np.float32))

    def memory_inputs(self) -> list[np.ndarray]:
        """The arrays to feed after the images, in the graph's input order (none when the memory is baked)."""
        names = self.graph.inputs[1:]
        if not names:
            return []
        if self.graph.memory_file is None:
            raise BundleError(f"{self.root}: the graph takes {names} after the images but no memory file is recorded")
        with np.load(self.path(self.graph.memory_file), allow_pickle=False) as stored:
            missing = [name for name in names if name not in stored.files]
            if missing:
                raise BundleError(f"{self.graph.memory_file} lacks {missing}; export the bundle again")
            return [np.ascontiguousarray(stored[name], dtype=np.float32) for name in names]
