"""Offline by construction: the ``curate`` and ``train`` entry points switch the hub libraries off.

tamis never downloads a model or a data set, but ``huggingface_hub`` may still open a connection while
resolving an id that is not in the local cache (it builds request headers and asks the hub even with
``local_files_only``) unless ``HF_HUB_OFFLINE`` is set. So both console scripts set the offline switches
of every hub library in their own process, before any of them is imported, unless the user explicitly
opts in with ``TAMIS_ALLOW_NETWORK=1``. Model endpoints (``augment``/``pairs --model-url``) are
URLs the user names and are not affected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

ALLOW_ENV = "TAMIS_ALLOW_NETWORK"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def network_allowed(environ: MutableMapping[str, str] = os.environ) -> bool:
    return environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def enforce(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set the offline switches (returns False, changing nothing, when the user allowed the network).
    A hub library imported before this call read its switch already: it is set on the module too."""
    if network_allowed(environ):
        return False
    for var in OFFLINE_VARS:
        environ[var] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    return True


def cached_snapshot(repo_id: str) -> str | None:
    """The local directory of a hub id already in the Hugging Face cache, or None. Looks only at the
    cache: nothing is resolved over the network, whatever the offline switches say."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss (not cached, bad id, partial snapshot) means "not here"
        return None
