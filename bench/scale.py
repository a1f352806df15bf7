"""Dataset scale: img/s of `score-dataset` locally and on Ray with 1, 2, … workers, on the
same images in the same run, and the peak memory of every worker.

    python bench/scale.py                                   # 2000 images of 256 px, signal critic
    python bench/scale.py --count 20000 --workers 1 2 4 8 --cpus 8
    python bench/scale.py --critic /path/to/checkpoint --gpus-per-worker 1 --workers 1 2

The baseline is the local engine (one process, no Ray), run first on the same files. Each
configuration writes its own output folder, so nothing is resumed. Ray times include the
actors' start-up (each loads its critic once) but not Ray's own start, so they need
enough images to amortise it (tens of seconds on a loaded 2-core machine). Peak memory is the
RSS high-water mark (VmHWM) of each process: the local engine's process, and every Ray
actor that scored, read from /proc while it runs (so Linux only; "n/a" elsewhere).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int, size: int) -> None:
    """Smooth scenes with varying blur-free noise and exposure (PNG), as a folder tree."""
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        rng = np.random.default_rng(i)
        base = np.stack([0.5 + 0.4 * np.sin(6 * x + i), 0.5 + 0.4 * np.cos(5 * y + 0.3 * i), x * y], -1)
        image = np.clip(base * (0.5 + 0.1 * (i % 6)) + rng.normal(0, 0.015 * (i % 7), base.shape), 0, 1)
        sub = folder / f"part{i % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255).astype(np.uint8)).save(sub / f"{i:06d}.png")


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class WorkerMemory:
    """Polls the Ray actor processes that score (their process title names CriticScorer)."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peaks, self._stop = interval, {}, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir() if Path("/proc").exists() else ():
                if not entry.name.isdigit():
                    continue
                try:
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "CriticScorer" in title:
                    peak = vm_hwm_mb(int(entry.name))
                    if peak is not None:
                        self.peaks[entry.name] = max(peak, self.peaks.get(entry.name, 0.0))
            self._stop.wait(self.interval)

    def __enter__(self) -> "WorkerMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


LOCAL_CHILD = """
import json, sys
from pathlib import Path
from visualcritic_core.dataset import score_dataset
s = score_dataset(sys.argv[1], sys.argv[2], critic=sys.argv[3], shard_size=int(sys.argv[4]),
                  batch_size=int(sys.argv[5]), progress=False)
hwm = next(int(l.split()[1]) / 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"seconds": s.seconds, "images": s.images_scored + s.errors, "peak_mb": hwm}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--critic", default="signal")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray actor counts (default 1 2)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import ray

    from visualcritic_core.dataset import score_dataset

    with tempfile.TemporaryDirectory(prefix="vc-scale-") as tmp:
        images = Path(tmp) / "images"
        make_images(images, args.count, args.size)
        print(f"{args.count} images of {args.size} px, critic {args.critic!r}, shards of {args.shard_size}, "
              f"batches of {args.batch_size}; {os.cpu_count()} CPUs on this machine")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        child = subprocess.run([sys.executable, "-c", LOCAL_CHILD, str(images), str(Path(tmp) / "local"),
                                args.critic, str(args.shard_size), str(args.batch_size)],
                               capture_output=True, text=True, env=env, check=True)
        local = json.loads(child.stdout.strip().splitlines()[-1])
        base = local["images"] / local["seconds"]
        rows = [("local (baseline)", "-", local["seconds"], base, f"{local['peak_mb']:.0f} (the process)")]

        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": env["PYTHONPATH"]}})
        try:
            seen: set[str] = set()  # actors of an earlier configuration may linger while the next starts
            for workers in args.workers:
                with WorkerMemory() as memory:
                    summary = score_dataset(images, Path(tmp) / f"ray-{workers}", critic=args.critic, engine="ray",
                                            workers=workers, gpus_per_worker=args.gpus_per_worker,
                                            shard_size=args.shard_size, batch_size=args.batch_size, progress=False)
                peaks = sorted(p for pid, p in memory.peaks.items() if pid not in seen)
                seen |= set(memory.peaks)
                # every actor process of this run: one per worker, more when Ray replaced an actor
                peak_text = ", ".join(f"{p:.0f}" for p in peaks) if peaks else "n/a"
                rows.append(("ray", str(workers), summary.seconds, summary.images_per_second, peak_text))
        finally:
            ray.shutdown()

    print(f"{'engine':<17} {'workers':>7} {'seconds':>8} {'img/s':>8} {'vs local':>9}  peak RSS per worker (MB)")
    for engine, workers, seconds, rate, peak in rows:
        print(f"{engine:<17} {workers:>7} {seconds:>8.1f} {rate:>8.1f} {rate / base:>8.2f}x  {peak}")
    print("img/s: all images over the whole run, model loading and (Ray) actor start-up included")


if __name__ == "__main__":
    main()
