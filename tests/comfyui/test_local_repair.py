"""The local-repair workflow (generate → map → inpaint the mask → keep the better) on a real
ComfyUI server with the tiny test models, and the two nodes it adds."""
from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from visualcritic_core import Objective, load_critic
from visualcritic_core.damage import apply_damage, sample_photos

from .server import WORKFLOWS, with_tiny_model
from .test_server import _widget_names, as_batch, read_png

NAME = "visualcritic_local_repair"


def load_api() -> dict:
    return json.loads((WORKFLOWS / "api" / f"{NAME}.json").read_text())


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.get("/object_info")


def test_nodes_are_listed_with_their_inputs(object_info):
    qmap = object_info["VisualCriticQualityMap"]
    assert set(qmap["input"]["required"]) == {"images", "critic", "threshold", "dilate"}
    assert qmap["output"] == ["IMAGE", "MASK", "FLOAT"] and qmap["category"] == "VisualCritic"
    keep = object_info["VisualCriticKeepBetter"]
    assert set(keep["input"]["required"]) == {"original", "repaired", "critic"}
    assert keep["output_name"][:2] == ["image", "kept_repair"]


def test_ui_workflow_matches_its_api_twin(object_info):
    ui = json.loads((WORKFLOWS / f"{NAME}.json").read_text())
    api = load_api()
    nodes = {str(n["id"]): n for n in ui["nodes"]}
    assert set(nodes) == set(api)
    links = {link[0]: link for link in ui["links"]}
    assert ui["last_link_id"] == max(links) and ui["last_node_id"] == max(map(int, nodes))
    for node_id, node in api.items():
        ui_node = nodes[node_id]
        assert ui_node["type"] == node["class_type"]
        for input_name, value in node["inputs"].items():
            if not isinstance(value, list):
                continue
            (ui_input,) = [i for i in ui_node["inputs"] if i["name"] == input_name]
            link = links[ui_input["link"]]
            assert link[1:4] == [int(value[0]), value[1], int(node_id)]
            assert link[5] == object_info[api[value[0]]["class_type"]]["output"][value[1]]
        values = iter(ui_node["widgets_values"])
        for widget in _widget_names(object_info[node["class_type"]]):
            assert node["inputs"][widget] == next(values), (node_id, widget)
            if widget == "seed":
                assert next(values) == "fixed"
    assert (WORKFLOWS / f"{NAME}.jpg").is_file()  # the template browser's thumbnail


def _damaged_photo(comfy) -> tuple[np.ndarray, np.ndarray]:
    """A 384 px photo with a noisy patch, saved in ComfyUI's input folder; and the patch."""
    photo = sample_photos(384)["coffee"]
    h, w = photo.shape[-2:]
    truth = np.zeros((h, w), bool)
    truth[40:200, 60:260] = True
    damaged = photo.clone()
    damaged[:, truth] = apply_damage(photo, "gaussian_noise", 3, seed=0)[:, truth]
    array = (damaged.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    Image.fromarray(array).save(comfy.input / "vc_damaged.png")
    return array, truth


def _outputs(comfy, prompt: dict, save: dict[str, list]) -> tuple[dict, dict[str, np.ndarray]]:
    for node_id, source in save.items():
        prompt[node_id] = {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": f"vc_{node_id}"}}
    entry = comfy.run(prompt)
    return entry, {node_id: read_png(comfy.saved_images(entry, node_id)[0]) for node_id in save}


def test_repair_workflow_runs_on_the_tiny_models_and_keeps_the_better(comfy):
    prompt = with_tiny_model(load_api(), size=128)
    mask_image = {"class_type": "MaskToImage", "inputs": {"mask": ["8", 1]}}
    prompt["30"] = mask_image
    entry, saved = _outputs(comfy, prompt, {"91": ["6", 0], "92": ["12", 0], "93": ["30", 0]})
    outputs = entry["outputs"]
    kept = outputs["13"]["kept"]
    assert len(kept) == 1 and len(outputs["8"]["flagged"]) == 1
    original, repaired, mask = saved["91"], saved["92"], saved["93"][..., 0] > 127
    result = read_png(comfy.saved_images(entry, "14")[0])
    assert np.array_equal(result, repaired if kept[0] else original)
    # the repair changes nothing outside the mask
    assert np.array_equal(repaired[~mask], original[~mask])
    # the choice is the library's own: MOS of both, as the critic scores them
    critic = load_critic("signal")
    before, after = critic.score(as_batch([original, repaired]))
    assert kept[0] == (after.mos > before.mos) or abs(after.mos - before.mos) < 0.02  # PNG rounding
    (preview,) = outputs["15"]["images"]  # PreviewImage writes to the temp folder: ask the server for it
    with urllib.request.urlopen(f"{comfy.url}/view?{urllib.parse.urlencode(preview)}", timeout=30) as resp:
        heatmap = read_png(io.BytesIO(resp.read()))
    assert heatmap.shape[1] == original.shape[1] and heatmap.shape[0] > original.shape[0]  # legend underneath


def test_repair_workflow_finds_and_repaints_a_damaged_patch(comfy):
    array, truth = _damaged_photo(comfy)
    prompt = with_tiny_model(load_api())
    prompt["6"] = {"class_type": "LoadImage", "inputs": {"image": "vc_damaged.png"}}
    prompt["20"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}}
    prompt["9"]["inputs"]["samples"] = ["20", 0]
    del prompt["4"], prompt["5"]
    prompt["8"]["inputs"]["dilate"] = 0  # the map's own mask, not grown
    prompt["30"] = {"class_type": "MaskToImage", "inputs": {"mask": ["8", 1]}}
    entry, saved = _outputs(comfy, prompt, {"92": ["12", 0], "93": ["30", 0]})
    mask = saved["93"][..., 0] > 127
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou >= 0.5, iou
    assert (mask & ~truth).sum() <= 0.05 * (~truth).sum()
    repaired = saved["92"]
    assert np.array_equal(repaired[~mask], array[~mask])
    assert not np.array_equal(repaired[mask], array[mask])
    kept = entry["outputs"]["13"]["kept"][0]
    result = read_png(comfy.saved_images(entry, "14")[0])
    assert np.array_equal(result, repaired if kept else array)
    before, after = load_critic("signal").score(as_batch([array, repaired]))
    gain = entry["outputs"]["13"]["gains"][0]
    assert gain == pytest.approx(Objective().score(after) - Objective().score(before), abs=0.02)


@pytest.mark.parametrize("case, message", [
    ("empty", "empty batch"),
    ("nan", "NaN"),
])
def test_bad_images_give_node_errors(comfy, case, message):
    prompt = {
        "1": {"class_type": "VCTestBadImage", "inputs": {"kind": case}},
        "2": {"class_type": "VisualCriticLoader", "inputs": {"critic": "signal", "hub_id_or_path": "", "device": "auto",
                                                              "dtype": "auto", "quantization": "none"}},
        "3": {"class_type": "VisualCriticQualityMap", "inputs": {"images": ["1", 0], "critic": ["2", 0], "threshold": 1.0,
                                                                  "dilate": 0}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    entry = comfy.run(prompt, expect_success=False)
    error = comfy.error_of(entry)
    assert error is not None and error["node_type"] == "VisualCriticQualityMap"
    assert message in error["exception_message"] and "images" in error["exception_message"]
    # the server lives on: a plain workflow still runs afterwards
    assert comfy.get("/system_stats")


def test_keep_better_refuses_mismatched_batches(comfy):
    prompt = {
        "1": {"class_type": "VCTestBadImage", "inputs": {"kind": "nan"}},
        "2": {"class_type": "VisualCriticLoader", "inputs": {"critic": "signal", "hub_id_or_path": "", "device": "auto",
                                                              "dtype": "auto", "quantization": "none"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "4": {"class_type": "VisualCriticKeepBetter", "inputs": {"original": ["3", 0], "repaired": ["3", 0],
                                                                  "critic": ["2", 0], "objective_text": "nonsense=1"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    error = comfy.error_of(comfy.run(prompt, expect_success=False))
    assert error["node_type"] == "VisualCriticKeepBetter" and "objective_text" in error["exception_message"]
    prompt["6"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}}
    prompt["4"]["inputs"].update(repaired=["6", 0], objective_text="")
    error = comfy.error_of(comfy.run(prompt, expect_success=False))
    assert "'repaired'" in error["exception_message"] and "'original'" in error["exception_message"]
