"""Splitting mutual scoring across processes with accelerate (multi-GPU, multi-node, or several CPU processes).

Every process holds all features (each query is compared with every other image, so every process needs all of
them as references) and computes the same aggregated features; the query blocks of ``plan.plan_blocks`` are split
between processes with ``split_between_processes`` (contiguous shares, sizes differing by at most one block).
Each process returns a full [N, P] score tensor that is zero outside its own queries; one all-reduce sum then
gives every process the complete maps. Adding zeros is exact, so the result equals the single-process one up to
the float32 rounding of differently shaped matrix products (the compared pairs are the same by construction).

``state`` is an ``accelerate.PartialState`` or ``Accelerator`` (anything with ``num_processes`` and
``split_between_processes``); accelerate is imported only when more than one process runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def num_processes(state: Any | None) -> int:
    return 1 if state is None else int(state.num_processes)


def my_share(items: Sequence[T], state: Any | None) -> list[T]:
    """This process's contiguous share of ``items`` (all of them without a multi-process state)."""
    if num_processes(state) == 1:
        return list(items)
    with state.split_between_processes(list(items)) as share:
        return list(share)


def sum_across_processes(tensor: torch.Tensor, state: Any | None) -> torch.Tensor:
    """Element-wise sum of ``tensor`` over all processes, returned on every process."""
    if num_processes(state) == 1:
        return tensor
    from accelerate.utils import reduce

    return reduce(tensor, reduction="sum")


def close_process_group() -> None:
    """Close the process group of a torchrun/accelerate launch before the process exits: a process that exits with
    it open aborts in the C++ destructor of its communication threads ("terminate called without an active
    exception"), and torchrun then fails the whole run. Call it after the last collective (a barrier)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
