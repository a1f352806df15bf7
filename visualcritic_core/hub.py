"""Reading a checkpoint's config.json from a local folder or a hub id, with errors that say
what is wrong, fast when offline (no retries against an unreachable hub)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class CheckpointError(ValueError):
    """A checkpoint folder or hub id cannot be used; the message names it and why."""


def read_config(spec: str, hub_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint's config as a dict. `spec`: a folder or a hub id; `hub_kwargs`:
    `revision` / `subfolder` (a subfolder applies to folders too)."""
    hub_kwargs = dict(hub_kwargs or {})
    spec = os.path.expanduser(spec)
    if os.path.isdir(spec):
        folder = Path(spec, hub_kwargs.get("subfolder") or "")
        config_path = folder / "config.json"
        if not config_path.is_file():
            present = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
            raise CheckpointError(
                f"critic folder {str(folder)!r} is not a transformers checkpoint: it has no config.json "
                f"(found: {present or 'nothing'})"
            )
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"critic folder {str(folder)!r}: config.json is not valid JSON ({err})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"critic folder {str(folder)!r}: config.json is not a JSON object")
        return config
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec, **hub_kwargs).to_dict()
    except (OSError, ValueError) as err:
        from huggingface_hub import constants

        why = "the hub is switched off (HF_HUB_OFFLINE) and it is not in the local cache" if constants.HF_HUB_OFFLINE else (
            "it is not in the local cache and the hub could not be reached, or no such repository exists"
        )
        first_line = (str(err).strip() or type(err).__name__).splitlines()[0][:300]
        raise CheckpointError(
            f"critic {spec!r} could not be loaded: {why}. Download it first (e.g. `hf download {spec}`) "
            f"or give a local checkpoint folder. ({first_line})"
        ) from None
