"""What an evaluation will score and show the detector as normal, fixed and checked before any model is loaded.

``plan_evaluation`` reads the test split of every category and checks that every image has a label; fixes the
references: k-shot lists drawn with each seed from the layout's *train* split (a layout without one, such as a
folder, refuses), or lists read from a file and checked to be this data set's, or the same given images for every
category (``--references``); records every reference file with its sha256; and refuses a run whose references
are test images (same path, or same bytes under another name), whichever way they came.

``zsad eval`` plans before it builds the detector, so a data set without labels, ``--shots`` on a folder or a
reference list that leaks test images costs no model load; ``evaluate`` runs the plan.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsad.data.layouts import load_samples
from zsad.data.layouts.base import SampleSets
from zsad.errors import ZsadError
from zsad.evaluation.environment import jsonable
from zsad.evaluation.provenance import expand_references, overlapping_references, reference_files
from zsad.evaluation.references import ReferenceLists, draw_references, load_reference_lists


@dataclass
class EvaluationPlan:
    """The checked inputs of a run: test samples by category, and the references of each (category, seed)."""

    dataset: str
    root: Path
    options: dict[str, Any]
    samples: SampleSets
    shots: int = 0
    seeds: tuple[int, ...] = (0,)
    lists: ReferenceLists | None = None  # k-shot runs
    lists_file: str | None = None  # where given lists were read from
    good_images: Any = None  # --references: the same images for every category
    files: list[dict[str, Any]] = field(default_factory=list)  # every reference file, with its sha256

    def references(self, category: str, seed: int):
        """What the detector is shown as normal for ``category`` in the pass of ``seed`` (None: nothing)."""
        if self.shots:
            return self.lists.get(category, self.shots, seed)
        return self.good_images

    def reference_source(self) -> str | None:
        if self.shots:
            where = f"lists read from {self.lists_file}" if self.lists_file else "lists drawn by this run"
            return f"{self.shots} good images per category from the train split of {self.dataset}, seeded ({where})"
        if self.good_images is not None:
            return "the given images (--references), the same for every category"
        return None

    def describe(self) -> dict[str, Any]:
        """The run description's data and reference fields: each list with its files (``reference_lists``) and
        every file with its sha256 (``reference_files``)."""
        if self.shots:
            lists = [{"category": c, "shots": self.shots, "seed": s,
                      "files": [str(p) for p in self.lists.get(c, self.shots, s)]}
                     for c in self.samples for s in self.seeds]
        elif self.good_images is not None:
            lists = [{"category": None, "shots": 0, "seed": None, "files": [f["path"] for f in self.files]}]
        else:
            lists = []
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "dataset_options": jsonable(self.options),
            "categories": list(self.samples),
            "split": "test",
            "shots": self.shots,
            "seeds": list(self.seeds),
            "references": self.lists.to_dict() if self.shots else None,
            "reference_source": self.reference_source(),
            "reference_lists": lists,
            "good_images": jsonable(self.good_images),
            "reference_files": list(self.files),
        }


def plan_evaluation(
    dataset: str,
    root: str | Path,
    categories: Iterable[str] | None = None,
    shots: int = 0,
    seeds: Sequence[int] = (0,),
    references: ReferenceLists | str | Path | None = None,
    dataset_options: dict[str, Any] | None = None,
    good_images=None,
) -> EvaluationPlan:
    """Read and check everything a run will use (see the module docstring); raises ``ZsadError`` naming the fix."""
    if good_images is not None and shots:
        raise ZsadError("--references and --shots both choose reference images; pass one of them")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ZsadError("no seed given; pass seeds=(0,) or more")
    if shots < 0:
        raise ZsadError(f"shots={shots} is negative; pass 0 (zero-shot) or k > 0")
    options = dict(dataset_options or {})
    root = Path(root)
    samples = load_samples(dataset, root, categories, split="test", **options)
    for category, group in samples.items():
        unlabelled = [s.path for s in group if s.label is None]
        if unlabelled:
            raise ZsadError(f"{category}: {len(unlabelled)} image(s) have no label (e.g. {unlabelled[0]}); eval needs "
                            "a label for every test image (a manifest's 'label' column, a folder's class sub-folders)")
    plan = EvaluationPlan(dataset=dataset, root=root, options=options, samples=samples, shots=shots, seeds=seeds,
                          good_images=good_images)
    paths: list[Path] = []
    if shots:
        if isinstance(references, (str, Path)):
            plan.lists_file = str(references)
            references = load_reference_lists(references)
        if references is not None:
            check_lists_match(references, dataset, root)
        plan.lists = references if references is not None else ReferenceLists(dataset=dataset, root=str(root))
        for category in samples:
            for seed in seeds:
                if references is None:
                    plan.lists.add(category, shots, seed, draw_references(dataset, root, category, shots, seed,
                                                                          **options))
                paths += plan.lists.get(category, shots, seed)
        what = f"the {shots}-shot reference lists" + (f" of {plan.lists_file}" if plan.lists_file else "")
    elif good_images is not None:
        paths = expand_references(good_images)
        what = "--references"
    plan.files = reference_files(paths)
    if plan.files:
        refuse_overlap(plan.files, [s.path for group in samples.values() for s in group], what)
    return plan


def check_lists_match(lists: ReferenceLists, dataset: str, root: Path) -> None:
    """Reference lists drawn for another data set would name images of another root (or none at all)."""
    same_root = Path(lists.root).expanduser().resolve() == Path(root).expanduser().resolve()
    if lists.dataset != dataset or not same_root:
        raise ZsadError(
            f"the reference lists were drawn for {lists.dataset} at {lists.root}, this run is {dataset} at {root}; "
            "draw lists for this data set (draw_reference_lists / zsad eval --reference-lists NEW.json), or load "
            "them with load_reference_lists(path, root=NEW_ROOT) if this is the same data set moved"
        )


def refuse_overlap(files: list[dict[str, Any]], test_paths: Sequence[Path], what: str) -> None:
    """A reference that is a test image of the run (same path or same bytes) is refused, naming one pair."""
    pairs = overlapping_references(files, test_paths)
    if pairs:
        reference, test = pairs[0]
        raise ZsadError(
            f"{what}: {len(pairs)} reference image(s) are test images of this run (e.g. {reference} = {test}); a "
            "reference is shown to the detector as normal, so scoring it again measures nothing. Take references "
            "from the train split (--shots) or from images outside the test set (--references DIR)"
        )
