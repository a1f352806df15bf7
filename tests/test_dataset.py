"""score-dataset and generate-pairs on the local engine: sources, the row schema, errors,
filtering, resuming and interrupts. (The Ray engine: tests/test_dataset_ray.py.)"""
import dataclasses
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from visualcritic_core import load_critic
from visualcritic_core.cli import main
from visualcritic_core.dataset import (
    OutputFolderError, SourceError, arrow_schema, list_shards, read_shard, report_columns, report_to_row,
    row_to_report, score_dataset,
)
from visualcritic_core.report import ATTRIBUTES, QualityReport

from dataset_fixtures import mos_quantiles, picture, write_folder


def read_output(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(out.glob("shard-*.parquet"))]).sort_by("path")


def read_errors(out: Path) -> dict[str, str]:
    return {e["path"]: e["error"] for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"), 40)


def test_every_source_kind_lists_the_same_images_in_stable_shards(tmp_path, images):
    files = sorted(p for p in images.rglob("*.png") if p.name.startswith("img"))
    (tmp_path / "list.txt").write_text("# the pictures\n" + "\n".join(str(p.relative_to(images)) for p in files)
                                       + "\n\n" + str(files[0].relative_to(images)) + "\n")
    (images / "list.txt").write_text((tmp_path / "list.txt").read_text())
    table = pa.table({"key": [p.name for p in files], "image": [p.read_bytes() for p in files]})
    pq.write_table(table, tmp_path / "shard.parquet", row_group_size=7)
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        for p in files:
            tar.add(p, arcname=f"{p.stem}.png")
            info = tarfile.TarInfo(f"{p.stem}.txt")
            info.size = 3
            tar.addfile(info, fileobj=io.BytesIO(b"cap"))
    expected = [p.read_bytes() for p in files]
    for source in (images / "list.txt", tmp_path / "shard.parquet", tmp_path / "shard.tar"):
        shards = list_shards(source, shard_size=16)
        assert [len(s) for s in shards] == [16, 16, 8], source
        assert [s.shard_id for s in shards] == [s.shard_id for s in list_shards(source, shard_size=16)]
        got = [(key, data) for s in shards for key, data, *_ in read_shard(s)]
        assert sorted(d for _, d in got) == sorted(expected), source
    keys = [k for s in list_shards(tmp_path / "shard.parquet", shard_size=16) for k in s.keys]
    assert keys == [p.name for p in files]
    tree = list_shards(images, shard_size=16)  # the folder: the pictures and the two corrupt files
    assert sum(map(len, tree)) == len(files) + 2
    (images / "list.txt").unlink()
    with pytest.raises(SourceError, match="does not exist"):
        list_shards(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        list_shards(tmp_path / "empty")


def test_a_damaged_container_fails_its_images_not_the_run(tmp_path, images):
    files = sorted(images.rglob("img*.png"))[:5]
    with tarfile.open(tmp_path / "ok.tar", "w") as tar:
        for p in files:
            tar.add(p, arcname=p.name)
    (shard,) = list_shards(tmp_path / "ok.tar")
    (tmp_path / "ok.tar").write_bytes((tmp_path / "ok.tar").read_bytes()[:2000])  # cut after the first image
    out = list(read_shard(shard))
    assert [k for k, *_ in out] and sorted(k for k, *_ in out) == sorted(shard.keys)
    assert sum(err is not None for _, _, err, _ in out) >= 4


@dataclass
class ExtendedReport(QualityReport):
    """A report with a field added later: it must become a column with no code change."""

    aesthetics: float | None = None

    def to_dict(self):
        return {**super().to_dict(), "aesthetics": self.aesthetics}

    @classmethod
    def from_dict(cls, data):
        base = QualityReport.from_dict(data)
        return cls(**{**dataclasses.asdict(base), "aesthetics": data.get("aesthetics")})


def test_columns_follow_the_report_fields():
    schema = arrow_schema()
    assert schema.names == ["path", "prompt", "mos", *ATTRIBUTES, "ai_generated", "description", "critic", "alignment",
                            "raw_scores", "sources"]
    assert schema.field("mos").type == pa.float64() and schema.field("critic").type == pa.string()
    assert schema.field("alignment").type == pa.float64()
    columns = {c.name: c for c in report_columns(QualityReport)}
    assert columns["sources"].json and columns["raw_scores"].json and not columns["alignment"].json
    report = QualityReport(mos=3.5, attributes={"sharpness": 4.0}, critic="signal+tiny", alignment=4.5,
                           raw_scores={"alignment": 0.31}, sources={"mos": "signal", "alignment": "tiny"})
    row = report_to_row("a.png", report)
    assert row["sharpness"] == 4.0 and row["alignment"] == 4.5 and json.loads(row["sources"])["mos"] == "signal"
    assert pa.Table.from_pylist([row], schema=arrow_schema()).num_rows == 1
    assert row_to_report(row) == report
    extended = ExtendedReport(mos=2.0, aesthetics=3.25)
    assert "aesthetics" in arrow_schema(ExtendedReport).names
    assert row_to_report(report_to_row("b.png", extended), ExtendedReport) == extended


def test_local_engine_scores_reports_errors_filters_and_resumes(tmp_path, images):
    out = tmp_path / "out"
    low, high = mos_quantiles(images, 0.4, 0.7)
    summary = score_dataset(images, out, shard_size=12, filter=f"min:mos={low}")
    assert (summary.shards_total, summary.shards_written, summary.images_scored, summary.errors) == (4, 4, 40, 2)
    table = read_output(out)
    critic = load_critic("signal")
    paths = table.column("path").to_pylist()
    expected = critic.score(paths)  # the same critic on the files directly
    assert table.column("mos").to_pylist() == pytest.approx([r.mos for r in expected], abs=1e-6)
    assert set(table.column("critic").to_pylist()) == {"signal"}
    assert table.schema.field("sharpness").type == pa.float64()
    errors = read_errors(out)
    assert sorted(Path(p).name for p in errors) == ["broken.png", "truncated.png"]
    assert all(Path(p).name in message for p, message in errors.items())
    passing = (out / "passing.txt").read_text().split()
    want = [p for p, m in zip(paths, table.column("mos").to_pylist()) if m >= low]
    assert passing == want and 0 < len(passing) < 40

    stamps = {f.name: f.stat().st_mtime_ns for f in out.glob("shard-*.parquet")}
    again = score_dataset(images, out, shard_size=12, filter=f"min:mos={low}")
    assert (again.shards_skipped, again.shards_written, again.images_scored) == (4, 0, 0)
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("shard-*.parquet")} == stamps
    lost = sorted(out.glob("shard-*.parquet"))[2]
    lost.unlink()
    partial = score_dataset(images, out, shard_size=12, filter=f"min:mos={high}")  # a new filter needs no rescoring
    assert (partial.shards_written, partial.shards_skipped) == (1, 3)
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("shard-*.parquet") if f != lost} == \
        {k: v for k, v in stamps.items() if k != lost.name}
    assert read_output(out).equals(table)
    assert read_errors(out) == errors
    assert (out / "passing.txt").read_text().split() == [p for p, m in zip(paths, table.column("mos").to_pylist())
                                                          if m >= high]
    with pytest.raises(OutputFolderError, match="critic"):
        score_dataset(images, out, shard_size=12, critic="signal", critic_options={"max_side": 32})


class InterruptAfter:
    """A critic loader whose critic raises KeyboardInterrupt (as Ctrl-C does) at call `calls`."""

    spec = "signal"
    options: dict = {}

    def __init__(self, calls):
        self.calls = calls

    def __call__(self):
        critic = load_critic("signal")
        original, left = critic.score, [self.calls]

        def score(*args, **kwargs):
            left[0] -= 1
            if left[0] == 0:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        critic.score = score
        return critic


def test_interrupt_leaves_finished_shards_valid_and_a_rerun_finishes(tmp_path, images):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        score_dataset(images, out, critic=InterruptAfter(5), shard_size=12, batch_size=6)
    finished = sorted(out.glob("shard-*.parquet"))
    assert len(finished) == 2 and not list(out.glob(".tmp-*"))
    assert all(pq.read_table(f).num_rows > 0 for f in finished)
    rest = score_dataset(images, out, shard_size=12, batch_size=6)
    assert (rest.shards_skipped, rest.shards_written) == (2, 2)
    whole = score_dataset(images, tmp_path / "whole", shard_size=12, batch_size=6)
    assert whole.images_scored == 40
    assert read_output(out).equals(read_output(tmp_path / "whole"))


def test_cli_score_dataset(tmp_path, images, capsys):
    assert main(["score-dataset", str(images), "--out", str(tmp_path / "o"), "--shard-size", "25",
                 "--filter", "min:mos=1.5", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images_scored"] == 40 and summary["errors_total"] == 2 and summary["shards_written"] == 2
    assert main(["score-dataset", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["score-dataset", str(images), "--out", str(tmp_path / "o3"), "--filter", "min:bogus=1"]) == 2


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from tiny_diffusers import save_tiny_sd_pipeline

    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd") / "model")


def test_generate_pairs_writes_a_datasets_loadable_preference_set_and_resumes(tmp_path, tiny_sd, capsys):
    import datasets

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\n\na sharp photo\nblurry noise\n")
    args = ["generate-pairs", "--prompts", str(prompts), "--model", str(tiny_sd), "--n", "3", "--steps", "2",
            "--width", "64", "--height", "64", "--seed", "10", "--prompts-per-shard", "2", "--out", str(tmp_path / "p"),
            "--no-progress"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 3
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "p" / "shard-*.parquet"), split="train")
    assert ds.num_rows == 3 and ds[1]["prompt"] == "a sharp photo" and ds[1]["seeds"] == [13, 14, 15]
    first = ds[0]
    assert first["chosen"].size == (64, 64) and first["rejected"].size == (64, 64)
    assert first["chosen_score"] == max(first["scores"]) and first["rejected_score"] == min(first["scores"])
    assert first["chosen_seed"] == first["seeds"][first["scores"].index(max(first["scores"]))]
    assert QualityReport.from_json(first["chosen_report"]).mos == first["chosen_score"]  # objective "mos=1"
    assert json.loads(first["settings"])["n"] == 3
    stamps = sorted(f.stat().st_mtime_ns for f in (tmp_path / "p").glob("shard-*.parquet"))
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["shards_skipped"] == 2
    assert sorted(f.stat().st_mtime_ns for f in (tmp_path / "p").glob("shard-*.parquet")) == stamps
    assert main([*args[:6], "2", *args[7:]]) == 2  # another n into the same folder
    assert "another run" in capsys.readouterr().err


def test_bytes_decode_like_files_for_every_mode(tmp_path):
    """Rows from bytes (all engines read bytes) equal the critic on the same files: RGBA,
    16-bit grey, palette, greyscale JPEG, an EXIF-rotated JPEG."""
    import numpy as np
    from PIL import Image

    from dataset_fixtures import picture

    base = picture(3, size=80)
    base.convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)).save(tmp_path / "grey16.png")
    base.convert("P").save(tmp_path / "palette.png")
    base.convert("L").save(tmp_path / "grey.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: the critic must see it upright, as load_image does
    base.crop((0, 0, 80, 48)).save(tmp_path / "rotated.jpg", exif=exif, quality=90)
    summary = score_dataset(tmp_path, tmp_path / "out")
    assert (summary.images_scored, summary.errors) == (5, 0)
    table = read_output(tmp_path / "out")
    expected = load_critic("signal").score(table.column("path").to_pylist())
    for column in ("mos", *ATTRIBUTES):
        assert table.column(column).to_pylist() == pytest.approx([r.get(column) for r in expected], abs=1e-6), column


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    from tiny_judges import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_prompts_from_captions_columns_and_members_reach_the_alignment_judge(tmp_path, clip_folder):
    prompts = ["a red kite over the sea", "an old fisherman", "a bowl of soup", "a cat on a chair"]
    files = []
    for i, prompt in enumerate(prompts):
        files.append(tmp_path / "folder" / f"img{i}.png")
        files[-1].parent.mkdir(exist_ok=True)
        picture(i).save(files[-1])
        files[-1].with_suffix(".txt").write_text(prompt + "\n")
    picture(7).save(tmp_path / "folder" / "uncaptioned.png")
    picture(8).save(tmp_path / "folder" / "blank.png")
    (tmp_path / "folder" / "blank.txt").write_text("  \n")
    pq.write_table(pa.table({"key": [f.name for f in files] + ["none.png"],
                             "image": [f.read_bytes() for f in files] + [files[0].read_bytes()],
                             "caption": prompts + [None]}), tmp_path / "rows.parquet", row_group_size=3)
    with tarfile.open(tmp_path / "samples.tar", "w") as tar:
        for i, (f, prompt) in enumerate(zip(files, prompts)):
            if i == 2:  # the caption may come before the image
                tar.addfile(tarinfo(f"{f.stem}.txt", prompt.encode()), io.BytesIO(prompt.encode()))
            tar.add(f, arcname=f.name)
            if i != 2:
                tar.addfile(tarinfo(f"{f.stem}.txt", prompt.encode()), io.BytesIO(prompt.encode()))
        tar.add(tmp_path / "folder" / "uncaptioned.png", arcname="uncaptioned.png")

    critic = load_critic(str(clip_folder), device="cpu", method="pickscore")  # raw = scaled cosine, no clamp
    expected = [r.raw_scores["alignment"] for r in critic.score([str(f) for f in files], prompts=prompts)]
    assert len(set(expected)) == len(prompts)  # the judge tells them apart: a swapped prompt would show
    for source, column, bad in ((tmp_path / "folder", "txt", {"uncaptioned.png", "blank.png"}),
                                (tmp_path / "rows.parquet", "caption", {"none.png"}),
                                (tmp_path / "samples.tar", ".txt", {"samples.tar/uncaptioned"})):
        out = tmp_path / f"out-{source.name}"
        summary = score_dataset(source, out, critic=str(clip_folder), device="cpu", prompt_column=column,
                                critic_options={"method": "pickscore"})
        assert (summary.images_scored, summary.errors) == (4, len(bad)), source
        table = read_output(out)
        assert table.column("prompt").to_pylist() == prompts, source
        raw = [json.loads(r)["alignment"] for r in table.column("raw_scores").to_pylist()]
        assert raw == pytest.approx(expected, abs=1e-5), source
        assert None not in table.column("alignment").to_pylist()
        errors = read_errors(out)
        assert {Path(p).name if source.is_dir() else p for p in errors} == bad, source
        assert all("prompt" in message for message in errors.values())
    with pytest.raises(ValueError, match="does not judge prompts"):
        score_dataset(tmp_path / "folder", tmp_path / "signal", prompt_column="txt")
    with pytest.raises(SourceError, match="no column 'prompt'"):
        list_shards(tmp_path / "rows.parquet", prompt_field="prompt")
    assert main(["score-dataset", str(tmp_path / "folder"), "--out", str(tmp_path / "cli"), "--critic",
                 str(clip_folder), "--device", "cpu", "--prompt-column", "txt", "--no-progress"]) == 0
    assert read_output(tmp_path / "cli").column("prompt").to_pylist() == prompts
    plain = score_dataset(tmp_path / "folder", tmp_path / "plain")  # no prompts: null column, alignment null
    assert plain.images_scored == 6 and set(read_output(tmp_path / "plain").column("prompt").to_pylist()) == {None}


def tarinfo(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info
