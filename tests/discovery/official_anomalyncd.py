"""Independent transcriptions of AnomalyNCD's official code (github.com/HUST-SLOW/AnomalyNCD, HEAD cbecce7), used
as test oracles only; zsad does not import this module.

- ``models/modules/_MEBin.py``: ``MEBin.get_search_range``, ``binarize_anomaly_maps``, ``get_threshold`` and
  ``bin_and_erode`` (config ``sample_rate=4, min_interval_len=4``), the while-loop of ``get_threshold`` kept as it
  is. cv2 is replaced by what it computes: ``connectedComponentsWithStats(connectivity=8)`` by
  ``scipy.ndimage.label`` with a 3 x 3 structure, ``cv2.erode`` (6 x 6 ones, default anchor at the centre, border
  never eroded) by ``scipy.ndimage.binary_erosion(border_value=1)``. The official maps are uint8 images; the
  range arithmetic is done on Python numbers (with numpy 2 the official ``int * np.uint8`` would wrap around).
- ``models/AnomalyNCD.py``: ``region_merge_predict``'s per-image merge: ``softmax(logit / 0.1)`` class
  probabilities, weights ``softmax(sqrt(count of mask pixels) / T)`` for images with several crops, the mean for one.
- ``utils/cluster_and_log_utils.py``: ``split_cluster_acc``'s matching and F1 (all classes novel).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from sklearn import metrics


class OfficialMEBin:
    def __init__(self, anomaly_map_list, sample_rate=4, min_interval_len=4, erode=False):
        self.sample_rate, self.min_interval_len, self.erode = sample_rate, min_interval_len, erode
        self.anomaly_map_list = anomaly_map_list
        self.max_th, self.min_th = self.get_search_range()

    def get_search_range(self):
        anomaly_score_list = [int(np.max(x)) for x in self.anomaly_map_list]
        return max(anomaly_score_list), min(anomaly_score_list)

    def get_threshold(self, anomaly_num_sequence, min_interval_len):
        interval_result = {}
        current_index = 0
        while current_index < len(anomaly_num_sequence):
            end = current_index
            start = end
            if len(set(anomaly_num_sequence[start:end + 1])) == 1 and anomaly_num_sequence[start] != 0:
                while (end < len(anomaly_num_sequence) - 1
                       and anomaly_num_sequence[end] == anomaly_num_sequence[end + 1]):
                    end += 1
                    current_index += 1
                if end - start + 1 >= min_interval_len:
                    if anomaly_num_sequence[start] not in interval_result:
                        interval_result[anomaly_num_sequence[start]] = [(start, end)]
                    else:
                        interval_result[anomaly_num_sequence[start]].append((start, end))
            current_index += 1
        if interval_result:
            count_result = {}
            for anomaly_num in interval_result:
                count_result[anomaly_num] = max([x[1] - x[0] for x in interval_result[anomaly_num]])
            est_anomaly_num = max(count_result, key=count_result.get)
            est_anomaly_num_interval_result = interval_result[est_anomaly_num]
            longest_interval = sorted(est_anomaly_num_interval_result, key=lambda x: x[1] - x[0])[-1]
            index = longest_interval[1]
            threshold = 255 - index * self.sample_rate
            threshold = int(threshold * (self.max_th - self.min_th) / 255 + self.min_th)
            return threshold, est_anomaly_num
        return 255, 0

    def bin_and_erode(self, anomaly_map, threshold):
        bin_result = np.where(anomaly_map > threshold, 255, 0).astype(np.uint8)
        if self.erode:
            bin_result = ndimage.binary_erosion(bin_result > 0, structure=np.ones((6, 6), bool),
                                                border_value=1).astype(np.uint8) * 255
        return bin_result

    def binarize_anomaly_maps(self):
        binarized_maps, est_anomaly_num_list = [], []
        for anomaly_map in self.anomaly_map_list:
            anomaly_map_norm = np.where(anomaly_map < self.min_th, 0,
                                        ((anomaly_map - self.min_th) / (self.max_th - self.min_th)) * 255)
            anomaly_num_sequence = []
            for score in range(255, 0, -self.sample_rate):
                bin_result = self.bin_and_erode(anomaly_map_norm, score)
                anomaly_num = ndimage.label(bin_result > 0, structure=np.ones((3, 3), bool))[1]
                anomaly_num_sequence.append(anomaly_num)
            threshold, est_anomaly_num = self.get_threshold(anomaly_num_sequence, self.min_interval_len)
            binarized_maps.append(self.bin_and_erode(anomaly_map, threshold))
            est_anomaly_num_list.append(est_anomaly_num)
        return binarized_maps, est_anomaly_num_list


def official_crop_box(x, y, w, h, image_shape, padding=0.1, min_crop_size=0.1):
    """The box ``crop_sub_image_mask`` makes for one contour's bounding rectangle (before merging)."""
    p1, p2 = [y, x], [y + h, x + w]
    center = [int((i + j) * 0.5) for i, j in zip(p1, p2)]
    radius = max(int(max(h, w) * (1 + padding) * 0.5), int(max(image_shape) * min_crop_size))
    radius = min(radius, int(max(image_shape) * 0.5))
    left, up, right, bottom = center[1] - radius, center[0] - radius, center[1] + radius, center[0] + radius
    if left < 0:
        left, right = 0, 2 * radius
    elif right > image_shape[1]:
        left, right = image_shape[1] - 2 * radius, image_shape[1]
    if up < 0:
        up, bottom = 0, 2 * radius
    elif bottom > image_shape[0]:
        up, bottom = image_shape[0] - 2 * radius, image_shape[0]
    return left, up, right, bottom


def official_region_merge(logits_per_region, mask_counts, temp=100):
    """One image's merged prediction: its crops' prototype logits and mask pixel counts -> (pred, probs)."""
    logit_values = [F.softmax(torch.as_tensor(l, dtype=torch.float64) / 0.1, dim=-1) for l in logits_per_region]
    if len(logit_values) > 1:
        pixel_counts_tensor = torch.zeros(len(logit_values), dtype=torch.float64)
        for j, count in enumerate(mask_counts):
            pixel_counts_tensor[j] = np.sqrt(count)
        logit_values_torch = torch.stack(logit_values)
        sof_counts = F.softmax(pixel_counts_tensor / temp, dim=0).view(-1, 1)
        merged = torch.sum(logit_values_torch * sof_counts, dim=0)
    else:
        merged = sum(logit_values) / len(logit_values)
    return int(torch.argmax(merged)), merged.numpy()


def official_scores(y_true, y_pred):
    """(NMI, ARI, F1) as ``split_cluster_acc`` computes them when every class is novel."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    D = max(y_pred.max(), y_true.max()) + 1
    w = np.zeros((D, D), dtype=int)
    for i in range(y_pred.size):
        w[y_pred[i], y_true[i]] += 1
    ind = np.vstack(linear_sum_assignment(w.max() - w)).T
    ind_map = {j: i for i, j in ind}
    label_new_ls, pred_new_ls = [], []
    for i in set(y_true):
        idx = np.where(y_true == i)[0]
        reverse_map = {v: k for k, v in ind_map.items()}
        label_new_ls.append(y_true[idx])
        pred_new_ls.append([reverse_map[pre] for pre in y_pred[idx]])
    label_new_ls, pred_new_ls = np.concatenate(label_new_ls), np.concatenate(pred_new_ls)
    return (metrics.normalized_mutual_info_score(label_new_ls, pred_new_ls),
            metrics.adjusted_rand_score(label_new_ls, pred_new_ls),
            metrics.f1_score(label_new_ls, pred_new_ls, average="micro"))
