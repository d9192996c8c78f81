"""Transcriptions of the benchmarks' official test listing and averaging, the reference of
``test_official_averaging.py`` (not zsad code; kept close to the originals, on small inputs).

AnomalyCLIP (github.com/zqhang/AnomalyCLIP), the code behind the zero-shot tables of VisA, MPDD and BTAD that
zsad's published comparison quotes (WinCLIP, AnomalyCLIP, AdaCLIP, Crane ... report the same per-object means):
- ``generate_dataset_json/btad.py`` and ``mpdd.py``: for each class of ``CLSNAMES``, each sub-folder ("species") of
  ``<class>/test``; a species not in ``['ok']`` (BTAD) or ``['good']`` (MPDD) is anomalous, and its masks are
  ``os.listdir(<class>/ground_truth/<species>)`` sorted, paired with the sorted images by index.
- ``generate_dataset_json/visa.py``: the rows of ``split_csv/1cls.csv`` whose split is ``test``, per class;
  label ``anomaly`` is anomalous, its mask the ``mask`` column.
- ``dataset.py``: the mask of an anomalous image is ``np.array(Image.open(mask).convert('L')) > 0``; a normal
  image's mask is all zero.
- ``test.py`` and ``metrics.py``: per object of ``generate_class_info``'s ``obj_list``, image AUROC and AP
  (scikit-learn) of the anomaly flags against the image scores, pixel AUROC (scikit-learn) of the object's
  flattened masks against its maps; the ``mean`` row is ``np.mean`` over the objects.
  The official code scores maps at the network's input size; here they are zsad's at the original size, since
  the listing and the averaging are what is compared. Its AUPRO (``cal_pro_score``, 200 thresholds) is left out:
  ``zsad/metrics/pixel.py`` documents why zsad computes the exact one.

ADEval 1.1.0 (pypi ``ADEval``), the official evaluation of Real-IAD (its README: one pickle per object, evaluated
alone; the paper's tables are the mean over objects). The single-view setting (``realiad_jsons_sv``) scores every
listed image on its own:
- an image's label is 1 when its mask, read as greyscale and resized nearest to the image, has a pixel > 127;
  an image without a mask is 0 (``__main__.get_gt``);
- ``mem_effic.auroc_and_aupr``: a histogram of the scores in ``nstrips`` = 1000 equal bins between their minimum
  and maximum (float32 edges, with -inf and inf overflow bins), cumulative counts per bin edge, trapezoid over
  (fpr, tpr) in reverse. (cv2's greyscale read is PIL's ``convert('L')`` for single-channel masks.)
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

ANOMALYCLIP_OBJECTS = {
    "visa": ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
             "pcb4", "pipe_fryum"],
    "mpdd": ["bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"],
    "btad": ["01", "02", "03"],
}


def anomalyclip_meta_folders(root: str, clsnames: list[str], normal: list[str]) -> dict[str, list[dict]]:
    """``BtadSolver.run`` / ``MpddSolver.run``, test phase (``normal`` = ``['ok']`` or ``['good']``)."""
    info = {}
    for cls_name in clsnames:
        cls_dir = f"{root}/{cls_name}"
        cls_info = []
        for specie in os.listdir(f"{cls_dir}/test"):
            is_abnormal = True if specie not in normal else False
            img_names = os.listdir(f"{cls_dir}/test/{specie}")
            mask_names = os.listdir(f"{cls_dir}/ground_truth/{specie}") if is_abnormal else None
            img_names.sort()
            mask_names.sort() if mask_names is not None else None
            for idx, img_name in enumerate(img_names):
                cls_info.append(dict(
                    img_path=f"{cls_name}/test/{specie}/{img_name}",
                    mask_path=f"{cls_name}/ground_truth/{specie}/{mask_names[idx]}" if is_abnormal else "",
                    cls_name=cls_name, specie_name=specie, anomaly=1 if is_abnormal else 0,
                ))
        info[cls_name] = cls_info
    return info


def anomalyclip_meta_visa(root: str, clsnames: list[str]) -> dict[str, list[dict]]:
    """``VisASolver.run``, test phase, reading ``split_csv/1cls.csv`` (columns object, split, label, image, mask)."""
    with open(f"{root}/split_csv/1cls.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    info = {}
    for cls_name in clsnames:
        cls_info = []
        for data in [r for r in rows if r[0] == cls_name and r[1] == "test"]:
            is_abnormal = True if data[2] == "anomaly" else False
            cls_info.append(dict(img_path=data[3], mask_path=data[4] if is_abnormal else "", cls_name=cls_name,
                                 specie_name="", anomaly=1 if is_abnormal else 0))
        info[cls_name] = cls_info
    return info


def anomalyclip_table(root: str, meta: dict[str, list[dict]], scores: dict[str, float],
                      maps: dict[str, np.ndarray], obj_list: list[str]) -> dict[str, dict[str, float]]:
    """``test.py``'s per-object table and mean row; ``scores``/``maps`` by the image's resolved path."""
    out = {}
    for obj in obj_list:
        gt_sp, pr_sp, masks, amaps = [], [], [], []
        for item in meta[obj]:
            path = str(Path(os.path.join(root, item["img_path"])).resolve())
            amap = maps[path]
            if item["anomaly"] == 0:
                mask = np.zeros(amap.shape, dtype=bool)
            else:
                mask = np.array(Image.open(os.path.join(root, item["mask_path"])).convert("L")) > 0
            gt_sp.append(item["anomaly"])
            pr_sp.append(scores[path])
            masks.append(mask)
            amaps.append(amap)
        gt, pr = np.array(gt_sp), np.array(pr_sp)
        out[obj] = {"i_auroc": roc_auc_score(gt, pr), "i_ap": average_precision_score(gt, pr),
                    "p_auroc": roc_auc_score(np.array(masks).ravel(), np.array(amaps).ravel())}
    out["mean"] = {key: float(np.mean([out[obj][key] for obj in obj_list])) for key in ("i_auroc", "i_ap", "p_auroc")}
    return out


def adeval_label(mask_path: str | None, size: tuple[int, int]) -> int:
    """``get_gt``'s label: the mask, resized nearest to the image's (width, height), has a pixel > 127."""
    if mask_path is None:
        return 0
    mask = Image.open(mask_path).convert("L")
    if mask.size != size:
        mask = mask.resize(size, Image.NEAREST)
    return 1 if np.any(np.asarray(mask) > 127) else 0


def adeval_auroc(preds: np.ndarray, labels: np.ndarray, nstrips: int = 1000) -> float:
    """``auroc_and_aupr``'s AUROC through ``_AccumulateStatCurve`` (one batch, unit weights)."""
    min_score, max_score = float(preds.min()), float(preds.max())
    bins = np.linspace(0., 1., num=nstrips + 1, endpoint=True, dtype=np.float32)
    bins = bins * (max_score - min_score) + min_score
    inf = np.array([float("inf")], dtype=np.float32)
    bins = np.concatenate([-inf, bins, inf], axis=0)
    label = np.not_equal(labels, 0).reshape(-1)
    preds = preds.reshape(-1)
    pos_stat = np.histogram(preds[label], bins)[0].astype(np.double)
    neg_stat = np.histogram(preds[~label], bins)[0].astype(np.double)

    def cum(val: np.ndarray) -> tuple[np.ndarray, float]:
        cval = np.cumsum(val)
        return cval[:-1], float(cval[-1])

    fn, p = cum(pos_stat)
    tn, n = cum(neg_stat)
    tp, fp = p - fn, n - tn
    tpr, fpr = tp / (tp + fn), fp / (fp + tn)
    return float(np.trapezoid(tpr[::-1], fpr[::-1], axis=0))  # np.trapz in the original (numpy < 2)


def adeval_objects(objects: dict[str, list[tuple[str, str | None]]], scores: dict[str, float],
                   maps: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """One ADEval run per object (``(image path, mask path or None)`` of its test list), then the mean over
    objects: ``i_auroc`` and ``p_auroc`` (pixels labelled > 127, histogram AUROC as for images)."""
    out = {}
    for obj, entries in objects.items():
        labels, preds, pixel_preds, pixel_labels = [], [], [], []
        for image, mask in entries:
            size = Image.open(image).size
            key = str(Path(image).resolve())
            labels.append(adeval_label(mask, size))
            preds.append(scores[key])
            gt = np.zeros((size[1], size[0]), bool) if mask is None else \
                np.asarray(Image.open(mask).convert("L").resize(size, Image.NEAREST)) > 127
            pixel_preds.append(maps[key].ravel())
            pixel_labels.append(gt.ravel())
        out[obj] = {"i_auroc": adeval_auroc(np.array(preds), np.array(labels)),
                    "p_auroc": adeval_auroc(np.concatenate(pixel_preds), np.concatenate(pixel_labels))}
    out["mean"] = {key: float(np.mean([out[obj][key] for obj in objects])) for key in ("i_auroc", "p_auroc")}
    return out
