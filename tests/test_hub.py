"""Checkpoint configs from folders and the hub: fail fast, clearly, and use the cache offline."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from visualcritic_core.hub import CheckpointError, read_config

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://hub.invalid"  # .invalid never resolves (RFC 2606)

LOAD_MISSING = """
import time
from visualcritic_core import load_critic
start = time.perf_counter()
try:
    load_critic("someone/missing-model")
except ValueError as err:
    print(f"{time.perf_counter() - start:.3f}")
    print(err)
"""


def _load_missing_in_a_fresh_process(tmp_path, offline: str) -> tuple[float, str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE=offline, HF_ENDPOINT=UNREACHABLE, HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=str(ROOT))
    env.pop("TRANSFORMERS_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", LOAD_MISSING], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seconds, message = done.stdout.split("\n", 1)
    return float(seconds), message.strip(), done.stderr


@pytest.mark.parametrize("offline", ["0", "1"])
def test_a_missing_hub_model_fails_fast_with_one_clear_message(tmp_path, offline):
    seconds, message, stderr = _load_missing_in_a_fresh_process(tmp_path, offline)
    assert seconds < (5.0 if offline == "0" else 2.0)  # offline: no network call at all
    assert "someone/missing-model" in message and "not in the local cache" in message
    assert ("HF_HUB_OFFLINE=1" if offline == "1" else "could not be reached") in message
    assert "--local-dir" in message and "folder" in message  # how to use a local folder instead
    assert "Retrying" not in stderr  # no retry spam


def _cache_a_config(cache: Path, repo: str, config: dict) -> None:
    """The hub cache's layout (huggingface_hub's file_download): refs/main → snapshot."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)


def test_an_unreachable_hub_uses_the_cache_and_tells_the_loads_that_follow(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "ENDPOINT", UNREACHABLE)
    _cache_a_config(tmp_path, "someone/cached", {"model_type": "llava"})
    kwargs = {"cache_dir": str(tmp_path)}
    start = time.perf_counter()
    assert read_config("someone/cached", kwargs) == {"model_type": "llava"}
    assert time.perf_counter() - start < 5.0
    assert kwargs["local_files_only"] is True  # processor and weights: the cache, no waiting


def test_folders_give_errors_that_name_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match=r"no config\.json \(found: nothing\)"):
        read_config(str(tmp_path), {})
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no config\.json \(found: \['weights\.bin'\]\)"):
        read_config(str(tmp_path), {})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(str(tmp_path), {})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text('{"model_type": "qwen2_vl"}')
    assert read_config(str(tmp_path), {"subfolder": "sub"}) == {"model_type": "qwen2_vl"}
    with pytest.raises(CheckpointError, match="does not exist"):
        read_config(str(tmp_path / "missing"), {})


def test_load_critic_names_an_unsupported_family(tmp_path):
    from visualcritic_core import load_critic

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="'bert' model; supported vision-language families: llava"):
        load_critic(str(tmp_path))
