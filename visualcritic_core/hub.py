"""Reading a checkpoint's config from a local folder or the Hugging Face hub, failing fast.

huggingface_hub retries an unreachable hub for about 25 s (five retries with back-off) before
it says anything useful. Here the hub is asked once, with a short timeout, whether it answers
at all; when it does not (or `HF_HUB_OFFLINE=1`), only the local cache is used and a missing
checkpoint fails at once, with a message that says how to point at a local folder instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG_FILENAME = "config.json"
PROBE_TIMEOUT = 2.0
"""Seconds to wait for any answer from the hub before treating it as unreachable."""


class CheckpointError(ValueError):
    """A checkpoint folder or hub id cannot be used; the message names it and why."""


CriticLoadError = CheckpointError
"""The LMM loader's name for it."""


def first_line(err: BaseException) -> str:
    """The first line of a loading error (transformers' can run to pages), for messages."""
    return (str(err).strip() or type(err).__name__).splitlines()[0][:300]


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` as set now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the hub answers at all (any HTTP status counts): one request, no retries."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # DNS, refused, timeout, proxy, TLS: the client's error types differ by version
        return False
    return True


def cache_only_reason(hub_kwargs: dict[str, Any]) -> str | None:
    """Why only the local cache can be used (asked for, HF_HUB_OFFLINE, or the hub does not
    answer), or None when the hub may be asked."""
    from huggingface_hub import constants

    if hub_kwargs.get("local_files_only"):
        return "only the local cache may be used (local_files_only)"
    if hub_offline():
        return "the hub is switched off (HF_HUB_OFFLINE=1)"
    if not hub_reachable():
        return f"the hub ({constants.ENDPOINT}) could not be reached"
    return None


def local_folder_hint(spec: str) -> str:
    """How to use a hub checkpoint without the hub."""
    return (f"Download it first where the hub is reachable (`hf download {spec} --local-dir DIR`) and give that "
            "folder instead of the hub id.")


def read_config(spec: str, hub_kwargs: dict[str, Any] | None = None) -> dict:
    """The `config.json` of a checkpoint folder or hub id, as a dict.

    `hub_kwargs` may hold `revision`, `subfolder` and `local_files_only`. When the hub is
    switched off or cannot be reached, `hub_kwargs` gains `local_files_only=True`, so the
    processor, profile and weights loaded next come from the same cache without waiting on
    the network again. Raises `CheckpointError` (a ValueError) saying what is wrong.
    """
    hub_kwargs = {} if hub_kwargs is None else hub_kwargs
    folder = Path(os.path.expanduser(spec))
    if folder.is_dir():
        return _read_folder_config(folder / hub_kwargs.get("subfolder", ""))
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if spec.startswith((".", "/", "~")) or os.path.sep in spec.replace("/", "", 1):
        raise CheckpointError(f"critic folder {spec!r} does not exist")
    why_not_hub = cache_only_reason(hub_kwargs)
    if why_not_hub:
        hub_kwargs["local_files_only"] = True
    else:  # the hub answers: a failure now is its answer (e.g. a proxy's 404)
        why_not_hub = f"the hub ({constants.ENDPOINT}) did not serve its {CONFIG_FILENAME}"
    where = f"{spec!r}" + "".join(f" ({k} {hub_kwargs[k]!r})" for k in ("subfolder", "revision") if k in hub_kwargs)
    try:
        path = hf_hub_download(spec, CONFIG_FILENAME, **hub_kwargs)
    except LocalEntryNotFoundError:
        raise CheckpointError(f"critic {where}: {why_not_hub} and it is not in the local cache. "
                              f"{local_folder_hint(spec)}") from None
    except GatedRepoError:
        raise CheckpointError(f"critic {where} is gated on the hub: accept its terms on the model page and log in "
                              "(`hf auth login`), or give a local folder.") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"critic {where}: no such repository on the hub (or it is private: log in with "
                              "`hf auth login`); a local checkpoint folder can be given instead.") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"critic {where}: the hub has no such revision") from None
    except EntryNotFoundError:
        raise CheckpointError(f"critic {where} has no {CONFIG_FILENAME} on the hub: it is not a transformers "
                              "checkpoint (wrong subfolder?)") from None
    except HFValidationError as err:
        raise CheckpointError(f"critic {spec!r} is neither an existing folder nor a valid hub id ({err})") from None
    except OSError as err:  # the hub answered the probe but failed the download
        raise CheckpointError(f"critic {where}: could not read {CONFIG_FILENAME} from the hub ({err}). "
                              f"{local_folder_hint(spec)}") from None
    return _parse_config(Path(path), where)


def _read_folder_config(folder: Path) -> dict:
    config_path = folder / CONFIG_FILENAME
    if not config_path.is_file():
        present = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
        raise CheckpointError(
            f"critic folder {str(folder)!r} is not a transformers checkpoint: it has no {CONFIG_FILENAME} "
            f"(found: {present or 'nothing'})"
        )
    return _parse_config(config_path, f"folder {str(folder)!r}")


def _parse_config(path: Path, where: str) -> dict:
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"critic {where}: {CONFIG_FILENAME} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"critic {where}: {CONFIG_FILENAME} holds {type(config).__name__}, not an object")
    return config
