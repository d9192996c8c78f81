"""Worker launched by test_mutual_distributed.py under torchrun: scores saved tokens, saves the result.

Usage: torchrun --nproc_per_node 2 mutual_worker.py INPUT.pt OUTPUT.pt. Every process scores its share of the
query blocks; process 0 writes the gathered result. ``PartialState(cpu=True)`` makes accelerate use gloo on CPU
(``accelerate launch --cpu --num_processes 2`` without an MPI hostfile starts a single process, so torchrun
starts the processes here; accelerate still does the splitting and the reduction).
"""
from __future__ import annotations

import sys

import torch
from accelerate import PartialState

from zsad.scoring.mutual import MutualConfig, mutual_scores
from zsad.parallel import my_share


def main(src: str, dst: str) -> None:
    state = PartialState(cpu=True)
    data = torch.load(src)
    config = MutualConfig(**data["config"])
    result = mutual_scores(data["tokens"], data["cls"], config, state=state)
    share = my_share(list(range(10)), state)  # the split that mutual_scores applies to its query blocks
    torch.save({"share": share, "num_processes": state.num_processes}, f"{dst}.rank{state.process_index}")
    if state.is_main_process:
        torch.save({"maps": result.maps, "scores": result.scores}, dst)
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
