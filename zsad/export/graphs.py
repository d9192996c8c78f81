"""Per-image scorers as single torch modules: a normalised image batch [B, 3, S, S] in, (grid maps [B, h, w],
image scores [B]) out, with the text embeddings and reference memories held as constants.

Each graph runs the backbone's own forward and the eager scoring function of its method (``score_text``,
``anomalyclip_scores``, WinCLIP's formulas, ``reference.image_scores``), so what is exported is what zsad
computes; where an eager step cannot be exported as written (its loops depend on the batch size) the graph calls the
equivalent in ``zsad.export.ops``, proven equal by the tests. The maps are the patch-grid maps that ``Detector``
results keep (``AnomalyResult.grid_map``) and the scores the image scores of that single evidence; upsampling and
smoothing to the image's frame stay outside the graph (``zsad_runtime.postprocess``), since they depend on each
image's original size.

Text embeddings ([2, D], normal and anomalous rows of a text head for one object name) and small reference memories
are buffers, i.e. constants of the exported graph. A memory larger than ``bake_limit_mb`` (or any memory, with
``memory_as_input=True``) becomes a second graph input instead, of dynamic size: the graph file stays small (ONNX
files hold at most 2 GB) and the same graph serves a rebuilt memory of the same backbone and layers.

Mutual scoring (MuSc) is not a per-image graph and stays in torch: an image's map depends on every other image of
the batch, its cost is O(N^2 P^2 C) with working buffers bounded by a plan (``plan_blocks``: query and reference
chunks, ``max_refs`` windows and ``groups`` drawn with a seeded permutation) whose loops depend on N, and RsCIN's
guards (constant scores, rows of non-positive similarities) are data-dependent branches. An ONNX version would have
to materialise the [N * P, N * P] distance matrix per layer and radius (480 MB for 8 images of 37 x 37 patches)
and would give up the bounds that make large batches possible. What a deployment needs from the graph side is the
backbone pass, which ``FeatureGraph`` exports; ``mutual_scores`` then runs on its outputs.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, ClassVar

import torch
from torch import nn

from zsad.backbones.clip import window_patch_index
from zsad.errors import ZsadError
from zsad.export import ops
from zsad.scoring.anomalyclip import AnomalyCLIPConfig, anomalyclip_scores
from zsad.scoring.reference import ReferenceMemory, image_scores
from zsad.scoring.text import IMAGE_SCORE_RULES, TextConfig, score_text
from zsad.scoring.winclip import WinCLIPConfig, WinCLIPMemory, text_scores

BATCH = "batch"
BAKE_LIMIT_MB = 256.0  # memories above this size become graph inputs unless told otherwise


def _no_windows(backbone, method: str) -> None:
    """The windowed forward walks windows in batch-dependent chunks and cannot be exported; only WinCLIP reads
    windows, and its graph computes them itself."""
    if backbone.windows:
        raise ZsadError(
            f"the {method} graph cannot be exported from a backbone built with WinCLIP windows "
            f"{list(backbone.windows)}: it does not read them, and the windowed forward is not exportable; build the "
            "backbone without windows (BackboneSpec(windows=())) or export the winclip graph"
        )


def _text_rows(text: torch.Tensor, backbone) -> torch.Tensor:
    if text.ndim != 2 or text.shape[0] != 2 or text.shape[1] != backbone.embed_dim:
        raise ZsadError(
            f"text embeddings must be [2, {backbone.embed_dim}] (normal, anomalous rows of a text head for "
            f"{backbone.name}), got {tuple(text.shape)}; pass text_head.embeddings(object_name)"
        )
    return text.detach().float().clone()


class ExportGraph(nn.Module):
    """Base: holds the backbone and the constants; knows its inputs, outputs and dynamic axes.

    Constants named in ``memory_names`` are buffers when baked, or graph inputs after ``images`` (in that order)
    when ``memory_as_input``; ``forward(images, *memory)`` reads them through ``_memory``.
    """

    method: ClassVar[str] = ""
    output_names: ClassVar[tuple[str, ...]] = ("maps", "scores")

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone.eval()
        self.input_size = int(backbone.input_size)
        self.mean = tuple(float(v) for v in backbone.mean)
        self.std = tuple(float(v) for v in backbone.std)
        self.grid = (self.input_size // backbone.patch_size,) * 2
        self.memory_names: tuple[str, ...] = ()
        self.memory_as_input = False
        self._memory_inputs: dict[str, torch.Tensor] = {}
        self.train(False)  # inference only (the backbone is already in eval mode)

    def _hold_memory(self, tensors: dict[str, torch.Tensor], as_input: bool | None, bake_limit_mb: float) -> None:
        size_mb = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20
        self.memory_as_input = size_mb > bake_limit_mb if as_input is None else bool(as_input)
        self.memory_names = tuple(tensors)
        for name, tensor in tensors.items():
            tensor = tensor.detach().float().contiguous().clone()  # a plain tensor (memories built in inference mode)
            if self.memory_as_input:
                self._memory_inputs[name] = tensor
            else:
                self.register_buffer(name, tensor)

    def _memory(self, given: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        if not self.memory_as_input:
            return {name: getattr(self, name) for name in self.memory_names}
        if len(given) != len(self.memory_names):
            raise ZsadError(f"the {self.method} graph takes the memory as inputs {list(self.memory_names)} after the "
                            f"images; got {len(given)} tensor(s)")
        return dict(zip(self.memory_names, given))

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("images", *(self.memory_names if self.memory_as_input else ()))

    def memory_inputs(self) -> dict[str, torch.Tensor]:
        """The tensors to feed after the images when the memory is a graph input (empty when baked)."""
        return dict(self._memory_inputs)

    def memory_tensors(self) -> dict[str, torch.Tensor]:
        """Every memory tensor, baked or given as an input (what a fingerprint of the references covers)."""
        return {name: self._memory_inputs[name] if self.memory_as_input else getattr(self, name)
                for name in self.memory_names}

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Seeded random images (and the memory inputs) to trace the graph with. A batch of 2: torch.export fixes
        dimensions of size 1, so a batch of 1 would not stay dynamic."""
        generator = torch.Generator().manual_seed(seed)
        images = torch.randn(batch, 3, self.input_size, self.input_size, generator=generator)
        return (images, *self._memory_inputs.values())

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Input and output name -> {axis: symbolic dimension}: the batch everywhere, the memory's row count."""
        axes = {name: {0: BATCH} for name in ("images", *self.output_names)}
        for name in self.memory_names if self.memory_as_input else ():
            axes[name] = {self._memory_inputs[name].ndim - 2: f"{name}_rows"}
        return axes

    def settings(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        """What a runtime needs to feed and read the graph, and the settings baked into it (JSON types only)."""
        return json.loads(json.dumps({
            "method": self.method,
            "backbone": self.backbone.name,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "grid": list(self.grid),
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "memory": None if not self.memory_names else {
                "as_input": self.memory_as_input,
                "shapes": {name: list((self._memory_inputs.get(name) if self.memory_as_input
                                       else getattr(self, name)).shape) for name in self.memory_names},
            },
            "settings": self.settings(),
        }))


class TextGraph(ExportGraph):
    """``score_text`` (zsad's text scorer) on CLIP's projected tokens against constant [normal, anomalous] rows."""

    method = "text"

    def __init__(self, backbone: nn.Module, text: torch.Tensor, config: TextConfig = TextConfig()):
        super().__init__(backbone)
        if not backbone.has_text:
            raise ZsadError(f"the text graph needs a CLIP backbone; {backbone.name} has no text tower")
        _no_windows(backbone, self.method)
        if config.image_score not in IMAGE_SCORE_RULES:
            raise ZsadError(f"image_score must be one of {IMAGE_SCORE_RULES}, got {config.image_score!r}")
        self.config = config
        self.register_buffer("text", _text_rows(text, backbone))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = score_text(self.backbone(images), self.text, self.config)
        return result.maps, result.scores

    def settings(self) -> dict[str, Any]:
        return asdict(self.config)


class AnomalyCLIPGraph(ExportGraph):
    """``anomalyclip_scores``: V-V tokens of the chosen layers against constant (learned) prompt rows, layer maps
    summed, CLS probability as the score. The backbone carries the V-V setting (``dpam_layer``/``vv_layers``)."""

    method = "anomalyclip"

    def __init__(self, backbone: nn.Module, text: torch.Tensor, config: AnomalyCLIPConfig = AnomalyCLIPConfig()):
        super().__init__(backbone)
        if not backbone.has_text:
            raise ZsadError(f"the anomalyclip graph needs a CLIP backbone; {backbone.name} has no text tower")
        _no_windows(backbone, self.method)
        self.config = config
        self.register_buffer("text", _text_rows(text, backbone))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = anomalyclip_scores(self.backbone(images), self.text, self.config)
        return result.maps, result.scores

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "vv_layers": int(self.backbone.vv_layers)}


class ReferenceGraph(ExportGraph):
    """``ReferenceMemory.score``: nearest reference patch per test patch and layer (few-shot, PatchCore,
    AnomalyDINO), the layers' distances averaged, the image score by the memory's rule (top1pct or max).

    layers: the block numbers the memory was built from (the detector's ``reference_layers``, by default the last
    extracted layer); they must be among the backbone's layers, one per memory layer.
    """

    method = "fewshot"

    def __init__(self, backbone: nn.Module, memory: ReferenceMemory, layers: tuple[int, ...] | None = None, *,
                 memory_as_input: bool | None = None, bake_limit_mb: float = BAKE_LIMIT_MB):
        super().__init__(backbone)
        _no_windows(backbone, self.method)
        layers = tuple(layers or backbone.layers[-1:])
        missing = [layer for layer in layers if layer not in backbone.layers]
        if missing:
            raise ZsadError(f"reference layers {missing} are not among the backbone's layers {list(backbone.layers)}; "
                            "build the backbone with them")
        if len(layers) != memory.num_layers:
            raise ZsadError(f"the reference memory holds {memory.num_layers} layer(s) but layers {list(layers)} were "
                            "given; pass the layers the memory was built from")
        self.layers = layers
        self.layer_index = [backbone.layers.index(layer) for layer in layers]
        self.metric = memory.config.metric
        self.image_score = memory.config.image_score
        self.chunk_size = memory.config.chunk_size
        self._hold_memory({"bank": memory.bank}, memory_as_input, bake_limit_mb)

    def forward(self, images: torch.Tensor, *memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bank = self._memory(memory)["bank"]
        tokens = self.backbone(images).patch_tokens[:, self.layer_index]
        b, n_layers, h, w, dim = tokens.shape
        distances = [
            ops.nearest_distances(tokens[:, layer].reshape(-1, dim), bank[layer], self.metric, self.chunk_size)
            .reshape(b, h * w)
            for layer in range(n_layers)
        ]
        maps = torch.stack(distances, dim=1).mean(dim=1).reshape(b, h, w)
        return maps, image_scores(maps, self.image_score)

    def settings(self) -> dict[str, Any]:
        return {"metric": self.metric, "image_score": self.image_score, "layers": list(self.layers)}


class WinCLIPGraph(ExportGraph):
    """WinCLIP with exact windows (``winclip.zero_shot``), or WinCLIP+ with a reference memory (``winclip.few_shot``,
    then the mean of both maps and of the CLS score and the few-shot map maximum, as ``winclip.winclip``); the
    formulas are the eager ones, written out here around the export-friendly window pass, nearest-neighbour search
    and harmonic aggregation of ``zsad.export.ops``. The backbone's own windows setting is not needed: the graph
    computes the windows of ``config.scales``."""

    method = "winclip"

    def __init__(self, backbone: nn.Module, text: torch.Tensor, config: WinCLIPConfig = WinCLIPConfig(),
                 memory: WinCLIPMemory | None = None, *, memory_as_input: bool | None = None,
                 bake_limit_mb: float = BAKE_LIMIT_MB):
        super().__init__(backbone)
        if not backbone.has_text:
            raise ZsadError(f"the winclip graph needs a CLIP backbone; {backbone.name} is not one")
        for k in config.scales:
            window_patch_index(self.grid, k)  # raises when a window does not fit the grid
        self.config = config
        self.register_buffer("text", _text_rows(text, backbone))
        self.few_shot = memory is not None
        if memory is not None:
            missing = [k for k in config.scales if k not in memory.windows]
            if missing:
                raise ZsadError(f"the WinCLIP+ memory has no windows of size {missing}; rebuild it with the same "
                                "backbone and scales")
            tensors = {"memory_patches": memory.patches}
            tensors.update({f"memory_windows_{k}": memory.windows[k] for k in config.scales})
            self._hold_memory(tensors, memory_as_input, bake_limit_mb)
            self.reference_images = memory.n_images

    def forward(self, images: torch.Tensor, *memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls, patches, windows = ops.clip_window_features(self.backbone, images, self.config.scales)
        # winclip.zero_shot, with the export-friendly harmonic aggregation
        scores = text_scores(cls, self.text, self.config.temperature)
        inverse = scores.reciprocal()[:, None, None].expand(-1, patches.shape[1], patches.shape[2])
        for k in self.config.scales:
            per_window = text_scores(windows[k], self.text, self.config.temperature)
            inverse = inverse + ops.harmonic_aggregation(per_window, k).reciprocal()
        maps = (len(self.config.scales) + 1) / inverse
        if not self.few_shot:
            return maps, scores
        # winclip.few_shot and winclip.winclip's combination
        bank = self._memory(memory)
        scales = [self._association(patches, bank["memory_patches"])]
        scales += [ops.harmonic_aggregation(self._association(windows[k], bank[f"memory_windows_{k}"]), k)
                   for k in self.config.scales]
        reference_maps = torch.stack(scales).mean(0)
        return (maps + reference_maps) / 2, (scores + reference_maps.flatten(1).amax(dim=1)) / 2

    def _association(self, embeddings: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """WinCLIP+'s visual association (1 - cos) / 2 to the nearest memory row, as ``winclip.few_shot``."""
        flat = embeddings.flatten(0, -2)
        distance = ops.nearest_distances(flat, bank, "cosine", self.config.chunk_size) / 2
        return distance.reshape(embeddings.shape[:-1])

    def settings(self) -> dict[str, Any]:
        described = {**asdict(self.config), "method": "winclip+" if self.few_shot else "winclip"}
        if self.few_shot:
            described["reference_images"] = self.reference_images
        return described


class FeatureGraph(ExportGraph):
    """The backbone pass alone: images -> (patch tokens [B, L, h, w, C], image embedding [B, D]), what mutual
    scoring (which stays in torch, see the module docstring) and any batch-level step read."""

    method = "features"
    output_names = ("patch_tokens", "cls")

    def __init__(self, backbone: nn.Module):
        super().__init__(backbone)
        _no_windows(backbone, self.method)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        return features.patch_tokens, features.cls

    def settings(self) -> dict[str, Any]:
        return {"layers": list(self.backbone.layers)}
