"""Finding model weights without hanging on a network that is not there.

Hub clients retry for about a minute when the machine is offline. zsad first looks in the local caches, then
probes the hub once with a short timeout, and fails at once with a message that says where it looked and how to
pass a local path. ``HF_HUB_OFFLINE=1`` skips the probe entirely.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from zsad.errors import WeightsUnavailableError

PROBE_TIMEOUT_S = 3.0


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One TCP connect to the hub; a DNS failure or a closed network answers in milliseconds."""
    if hub_offline():
        return False
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def unavailable(model: str, looked_in: str, how_to_fix: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"cannot load weights for {model}: not found in {looked_in}, and the Hugging Face hub "
        f"{'is disabled (HF_HUB_OFFLINE=1)' if hub_offline() else 'is unreachable'}. {how_to_fix}"
    )
