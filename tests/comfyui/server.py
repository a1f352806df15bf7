"""A real ComfyUI server with this node pack (and the test-only nodes) installed.

ComfyUI comes from `scripts/get_comfyui.sh` (PyPI) unless VISUALCRITIC_COMFYUI_DIR names a
ComfyUI checkout; VISUALCRITIC_COMFYUI_ARGS adds arguments to its command line (e.g.
`--front-end-root DIR` for another frontend). One server per test session; it runs on the CPU
and dies with the session.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKFLOWS = REPO / "workflows"
API_WORKFLOWS = WORKFLOWS / "api"  # what /prompt takes; beside the UI files ComfyUI's template browser lists
STARTUP_TIMEOUT = 180
PROMPT_TIMEOUT = 240


def _comfyui_dir() -> Path:
    chosen = os.environ.get("VISUALCRITIC_COMFYUI_DIR")
    if chosen:
        path = Path(chosen)
        if not (path / "main.py").is_file():
            raise RuntimeError(f"VISUALCRITIC_COMFYUI_DIR={chosen} has no main.py")
        return path
    out = subprocess.run(["bash", str(REPO / "scripts" / "get_comfyui.sh")], check=True,
                         capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyClient:
    """The few HTTP calls the tests make, plus where the server keeps its files."""

    def __init__(self, url: str, root: Path, log: Path, process: subprocess.Popen) -> None:
        self.url, self.root, self.log, self.process = url, root, log, process
        self.output = root / "output"
        self.input = root / "input"
        self.models = root / "models"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, payload: dict | None = None) -> int:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload or {}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status

    def submit(self, prompt: dict) -> tuple[int, dict]:
        data = json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode()
        request = urllib.request.Request(self.url + "/prompt", data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def run(self, prompt: dict, expect_success: bool = True) -> dict:
        """Queue a prompt and wait for its /history entry."""
        return self.wait(self.queue(prompt), expect_success)

    def queue(self, prompt: dict) -> str:
        status, answer = self.submit(prompt)
        assert status == 200, f"/prompt refused the graph: {answer}"
        return answer["prompt_id"]

    def wait(self, prompt_id: str, expect_success: bool = True) -> dict:
        deadline = time.monotonic() + PROMPT_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"ComfyUI died; log:\n{self.tail_log()}"
            history = self.get(f"/history/{urllib.parse.quote(prompt_id)}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                entry["status"]["completed"] or entry["status"]["status_str"] == "error"
            ):
                ok = entry["status"]["status_str"] == "success"
                if expect_success and not ok:
                    raise AssertionError(f"prompt failed: {self.error_of(entry)}\nlog:\n{self.tail_log()}")
                return entry
            time.sleep(0.2)
        raise AssertionError(f"prompt {prompt_id} did not finish in {PROMPT_TIMEOUT}s; log:\n{self.tail_log()}")

    @staticmethod
    def error_of(entry: dict) -> dict | None:
        for kind, data in entry.get("status", {}).get("messages", []):
            if kind == "execution_error":
                return data
        return None

    def saved_images(self, entry: dict, node_id: str) -> list[Path]:
        return [self.output / item.get("subfolder", "") / item["filename"] for item in entry["outputs"][node_id]["images"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail_log(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_server(root: Path):
    """Start ComfyUI with the pack under `root`; returns a ComfyClient (stop it with .stop())."""
    comfy_dir = _comfyui_dir()
    custom_nodes = root / "custom_nodes"
    custom_nodes.mkdir()
    (custom_nodes / "comfyui-visualcritic").symlink_to(REPO, target_is_directory=True)
    (custom_nodes / "visualcritic_testnodes").symlink_to(HERE / "testnodes", target_is_directory=True)
    for name in ("input", "output", "temp", "models/visualcritic", "models/LLM"):
        (root / name).mkdir(parents=True)
    config = root / "extra_model_paths.yaml"
    config.write_text(
        "visualcritic_tests:\n"
        f"  base_path: {root}\n"
        f"  custom_nodes: {custom_nodes}\n"
        f"  visualcritic: {root / 'models' / 'visualcritic'}\n"
        f"  LLM: {root / 'models' / 'LLM'}\n"
    )
    # A user directory of its own where ComfyUI has one (0.3.x): frontend settings saved by an
    # earlier run (e.g. "Nodes 2.0" switched on) must not leak into this one. The 2024 tree keeps
    # them in its own folder; the browser test sets every setting it relies on.
    user_dir = []
    if "--user-directory" in (comfy_dir / "comfy" / "cli_args.py").read_text():
        (root / "user").mkdir()
        user_dir = ["--user-directory", str(root / "user")]
    port = _free_port()
    log = root / "comfyui.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--disable-auto-launch", "--output-directory", str(root / "output"),
             "--input-directory", str(root / "input"), "--temp-directory", str(root / "temp"),
             "--extra-model-paths-config", str(config), *user_dir, *shlex.split(os.environ.get("VISUALCRITIC_COMFYUI_ARGS", ""))],
            cwd=comfy_dir, stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    client = ComfyClient(f"http://127.0.0.1:{port}", root, log, process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {process.returncode}; log:\n{client.tail_log()}")
            try:
                client.get("/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not answer in {STARTUP_TIMEOUT}s; log:\n{client.tail_log()}")
                time.sleep(0.5)
    except BaseException:
        client.stop()
        raise
    return client


def load_workflow(name: str) -> dict:
    return json.loads((API_WORKFLOWS / f"{name}.json").read_text())


def with_tiny_model(prompt: dict, size: int = 64, steps: int = 2) -> dict:
    """The workflow with the checkpoint and text encoders swapped for the test-only tiny
    stand-ins (same input names and output slots) and a small, quick sampling setup."""
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"] = "VCTestTinyCheckpoint"
        elif node["class_type"] == "CLIPTextEncode":
            node["class_type"] = "VCTestTextConditioning"
        elif node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=size, height=size)
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
    return prompt
