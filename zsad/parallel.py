"""Several processes on one run (torchrun / ``accelerate launch``, multi-GPU, multi-node or CPU processes).

One home for what detection, mutual scoring and training share: whether this process is one of several and its
accelerate state (``process_state``, with the CPU rule below), its contiguous share of a list (``my_share``), sums
and gathers across processes, the relaunch of a command under torchrun (``--processes N``), and closing the process
group before exit. accelerate and torch.distributed are imported only when more than one process runs.

The CPU rule: without CUDA (or with ``--device cpu``) accelerate must be told ``cpu=True``; otherwise, under
torchrun on a CPU-only machine, ``PartialState()`` reports a single process and every process would score (or
train on) all the data and write the same results.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def launched_processes() -> int:
    """How many processes the launcher started (1 when not under torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_cpu_backend(device: str = "auto") -> bool:
    """Whether accelerate must run with ``cpu=True`` (gloo): CPU asked for, or several processes without CUDA."""
    import torch

    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def process_state(device: str = "auto"):
    """An accelerate ``PartialState`` when launched as several processes, else None."""
    if launched_processes() <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=use_cpu_backend(device))


def num_processes(state: Any | None) -> int:
    return 1 if state is None else int(state.num_processes)


def is_main(state: Any | None) -> bool:
    return state is None or bool(state.is_main_process)


def my_share(items: Sequence[T], state: Any | None) -> list[T]:
    """This process's contiguous share of ``items`` (all of them without a multi-process state)."""
    if num_processes(state) == 1:
        return list(items)
    with state.split_between_processes(list(items)) as share:
        return list(share)


def sum_across_processes(tensor, state: Any | None):
    """Element-wise sum of ``tensor`` over all processes, returned on every process."""
    if num_processes(state) == 1:
        return tensor
    from accelerate.utils import reduce

    return reduce(tensor, reduction="sum")


def total(count: int, state: Any | None) -> int:
    """The sum of ``count`` over all processes."""
    if num_processes(state) == 1:
        return count
    from accelerate.utils import gather_object

    return sum(gather_object([count]))


def gather(item: Any, state: Any | None) -> list[Any]:
    """Every process's ``item``, in process order, on every process."""
    if num_processes(state) == 1:
        return [item]
    from accelerate.utils import gather_object

    return gather_object([item])


def close_process_group() -> None:
    """Close the process group of a torchrun/accelerate launch before the process exits: a process that exits with
    it open aborts in the C++ destructor of its communication threads ("terminate called without an active
    exception"), and torchrun then fails the whole run. Call it after the last collective (a barrier)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def finish(state: Any | None) -> None:
    """Every process waits for the main one to finish writing, then closes the group."""
    if state is not None:
        state.wait_for_everyone()
        close_process_group()


def relaunch(processes: int, argv: list[str] | None = None) -> int:
    """The same ``zsad`` command under torchrun with ``processes`` processes on this machine (``--processes N``
    removed). The cores are shared out between the processes (``OMP_NUM_THREADS``, unless set), which also keeps
    torchrun from printing its warning about it."""
    cleaned, skip = [], False
    for item in sys.argv[1:] if argv is None else argv:
        if skip:
            skip = False
        elif item == "--processes":
            skip = True
        elif not item.startswith("--processes="):
            cleaned.append(item)
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // processes))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "zsad.cli.main", *cleaned]
    return subprocess.call(command, env={**os.environ, "OMP_NUM_THREADS": threads})
