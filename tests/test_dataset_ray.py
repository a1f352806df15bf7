"""The Ray engine on a real local Ray cluster (`ray.init(num_cpus=2)`, one for this module):
the same rows as the local engine, errors reported, reruns resume, a killed worker's
batch is retried. Kept small: Ray actors start in seconds, not milliseconds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from visualcritic_core import load_critic
from visualcritic_core.dataset import score_dataset
from visualcritic_core.dataset.pairs import PairSettings, generate_pairs
from visualcritic_core.tiny_models import build_tiny_checkpoint

from dataset_fixtures import mos_quantiles, write_folder

ROOT = Path(__file__).resolve().parents[1]
# Ray runs each 1-CPU task with OMP_NUM_THREADS=1; the local engine's reference scores must use
# the same thread count to be bit-identical (torch splits reductions by thread count: with two
# threads here the scores differed by 1e-7 on an AMD EPYC, and every equality below failed)
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    # Token authentication off for this private test cluster, so a second driver (the CLI
    # test's subprocess) can join it by address.
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CrashOnce travels to the workers by value
    yield ray
    ray.shutdown()
    if auth is None:
        os.environ.pop("RAY_AUTH_MODE")
    else:
        os.environ["RAY_AUTH_MODE"] = auth


def read_output(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(out.glob("shard-*.parquet"))]).sort_by("path")


def assert_same_scores(a: pa.Table, b: pa.Table) -> None:
    """Same rows and columns; float scores equal to float32 rounding (1e-5): the CLI's own
    worker process may split torch reductions differently from this one."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a[name].to_pylist(), b[name].to_pylist()
        if pa.types.is_floating(a.schema.field(name).type):
            assert x == pytest.approx(y, abs=1e-5, nan_ok=True), name
        else:
            assert x == y, name


def read_errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


class CrashOnce:
    """A signal-critic loader whose first scoring call, in whichever actor makes it, kills
    that worker process (os._exit, as an out-of-memory kill would): Ray must restart the
    actor and retry the batch."""

    spec = "signal"
    options: dict = {}

    def __init__(self, marker: str):
        self.marker = marker

    def __call__(self):
        critic = load_critic("signal")
        original, marker = critic.score, self.marker

        def score(*args, **kwargs):
            try:
                os.unlink(marker)  # only one process wins this
            except FileNotFoundError:
                return original(*args, **kwargs)
            os._exit(1)

        critic.score = score
        return critic


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"), 240)


def test_ray_rows_equal_local_rows_survive_a_killed_worker_and_resume(ray_cluster, tmp_path, images):
    local = score_dataset(images, tmp_path / "local", shard_size=50, batch_size=16)
    marker = tmp_path / "crash-marker"
    marker.write_text("kill the first worker that scores")
    on_ray = score_dataset(images, tmp_path / "ray", engine="ray", workers=2, shard_size=50, batch_size=16,
                           critic=CrashOnce(str(marker)))
    assert not marker.exists()  # a worker did die
    assert (on_ray.images_scored, on_ray.errors, on_ray.shards_written) == (240, 2, 5)
    assert (local.images_scored, local.errors) == (240, 2)
    assert read_output(tmp_path / "ray").equals(read_output(tmp_path / "local"))
    for shard in (tmp_path / "local").glob("shard-*.parquet"):  # same shard ids, same content, shard by shard
        assert pq.read_table(tmp_path / "ray" / shard.name).equals(pq.read_table(shard))
    assert read_errors(tmp_path / "ray") == read_errors(tmp_path / "local")
    assert sorted(Path(e["path"]).name for e in read_errors(tmp_path / "ray")) == ["broken.png", "truncated.png"]

    out = tmp_path / "ray"
    stamps = {f.name: f.stat().st_mtime_ns for f in out.glob("shard-*.parquet")}
    lost = sorted(out.glob("shard-*.parquet"))[1]
    lost.unlink()
    again = score_dataset(images, out, engine="ray", workers=1, shard_size=50, batch_size=16,
                          critic=CrashOnce(str(marker)))  # marker gone: no crash this time
    assert (again.shards_written, again.shards_skipped, again.images_scored) == (1, 4, 50)
    assert {n: t for n, t in stamps.items() if n != lost.name} == \
        {f.name: f.stat().st_mtime_ns for f in out.glob("shard-*.parquet") if f.name != lost.name}
    assert read_output(out).equals(read_output(tmp_path / "local"))
    done = score_dataset(images, out, engine="ray", shard_size=50)
    assert (done.shards_written, done.shards_skipped) == (0, 5)


def test_ray_tiny_lmm_critic_equals_local(ray_cluster, tmp_path):
    folder = build_tiny_checkpoint("llava", tmp_path / "tiny-llava", seed=0)
    images = write_folder(tmp_path / "images", 14, subfolders=1)
    local = score_dataset(images, tmp_path / "local", critic=str(folder), shard_size=8, batch_size=4)
    on_ray = score_dataset(images, tmp_path / "ray", critic=str(folder), engine="ray", workers=1, shard_size=8,
                           batch_size=4)
    assert (local.images_scored, local.errors) == (on_ray.images_scored, on_ray.errors) == (14, 2)
    table = read_output(tmp_path / "ray")
    assert table.equals(read_output(tmp_path / "local"))
    assert set(table.column("critic").to_pylist()) == {str(folder)}
    assert len(set(table.column("mos").to_pylist())) > 1  # real, image-dependent scores


def test_ray_prompted_alignment_equals_local(ray_cluster, tmp_path):
    from tiny_judges import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "clip")
    images = write_folder(tmp_path / "images", 6, subfolders=1)
    for i, png in enumerate(sorted(images.rglob("img*.png"))):
        png.with_suffix(".txt").write_text(f"picture number {i}")
    kwargs = dict(critic=str(clip), device="cpu", prompt_column="txt", shard_size=4,
                  critic_options={"method": "pickscore"})
    local = score_dataset(images, tmp_path / "local", **kwargs)
    on_ray = score_dataset(images, tmp_path / "ray", engine="ray", **kwargs)
    assert (local.images_scored, local.errors) == (on_ray.images_scored, on_ray.errors) == (6, 2)
    table = read_output(tmp_path / "ray")
    assert table.equals(read_output(tmp_path / "local"))
    assert table.column("prompt").to_pylist() == [f"picture number {i}" for i in range(6)]


def test_ray_generate_pairs_equals_local(ray_cluster, tmp_path):
    from tiny_diffusers import save_tiny_sd_pipeline

    model = save_tiny_sd_pipeline(tmp_path / "tiny-sd")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\nblurry noise\n")
    settings = PairSettings(model=str(model), n=2, seed=3,
                            pipe_kwargs={"num_inference_steps": 2, "width": 64, "height": 64})
    local = generate_pairs(prompts, tmp_path / "local", settings, prompts_per_shard=1)
    on_ray = generate_pairs(prompts, tmp_path / "ray", settings, engine="ray", workers=1, prompts_per_shard=1)
    assert local.images_scored == on_ray.images_scored == 2
    for shard in (tmp_path / "local").glob("shard-*.parquet"):
        assert pq.read_table(tmp_path / "ray" / shard.name).equals(pq.read_table(shard))


def test_cli_joins_a_running_cluster_by_address(ray_cluster, tmp_path, images):
    """`--address` joins an existing cluster (here the module's, from a second process whose
    workers get the package through runtime_env py_modules) and leaves it running."""
    address = ray_cluster.get_runtime_context().gcs_address
    (threshold,) = mos_quantiles(images, 0.5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "visualcritic_core", "score-dataset", str(images), "--out",
                          str(tmp_path / "cli"), "--engine", "ray", "--address", address, "--workers", "1",
                          "--shard-size", "120", "--filter", f"min:mos={threshold}", "--no-progress"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["images_scored"], summary["errors"], summary["shards_written"]) == (240, 2, 3)
    local = score_dataset(images, tmp_path / "local", shard_size=120, filter=f"min:mos={threshold}")
    assert_same_scores(read_output(tmp_path / "cli"), read_output(tmp_path / "local"))
    assert (tmp_path / "cli" / "passing.txt").read_text() == (tmp_path / "local" / "passing.txt").read_text()
    assert local.passing == summary["passing"] and 0 < local.passing < 240
    assert ray_cluster.is_initialized() and ray_cluster.cluster_resources().get("CPU") == 2
