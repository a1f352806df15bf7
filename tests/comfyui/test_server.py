"""The node pack on a real ComfyUI server: listing, the three workflows, errors."""
from __future__ import annotations

import copy
import io
import json
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from visualcritic_core import Objective, load_critic

from .server import API_WORKFLOWS, WORKFLOWS, load_workflow, with_tiny_model

NODES = ("VisualCriticLoader", "VisualCriticScore", "VisualCriticRerank", "VisualCriticGatedKSampler",
         "VisualCriticReport", "VisualCriticPromptFeedback", "VisualCriticObjective", "VisualCriticSampleImages")
VIRTUAL = {"PrimitiveNode", "Note"}  # frontend-only nodes: never sent to /prompt
WORKFLOW_NAMES = ("visualcritic_best_of_n", "visualcritic_gated_regeneration", "visualcritic_local_repair",
                  "visualcritic_score_and_sort")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def read_png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def as_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).float() / 255.0


@pytest.fixture(scope="module")
def object_info(comfy):
    (comfy.models / "visualcritic" / "my_critic").mkdir(exist_ok=True)
    return comfy.get("/object_info")


def test_object_info_lists_every_node_with_its_inputs(object_info):
    for name in NODES:
        info = object_info[name]
        assert info["category"] == "VisualCritic"
        assert info["display_name"].startswith("VisualCritic")
        assert info["description"]
    loader = object_info["VisualCriticLoader"]["input"]["required"]
    assert {"signal", "my_critic"} <= set(loader["critic"][0])  # folders under models/visualcritic
    assert loader["device"][0][:2] == ["auto", "cpu"]
    assert loader["quantization"][0] == ["none", "8bit", "4bit"]
    assert object_info["VisualCriticLoader"]["output"] == ["CRITIC"]
    score = object_info["VisualCriticScore"]
    assert set(score["input"]["required"]) == {"images", "critic", "describe"}
    assert score["output"][0] == "VC_REPORT" and score["output_name"][1] == "mos"
    rerank = object_info["VisualCriticRerank"]
    assert set(rerank["input"]["required"]) == {"images", "top_k"}  # compact: the objective comes in as text
    assert set(rerank["input"]["optional"]) == {"reports", "critic", "latent", "mask", "objective_text", "prompt"}
    assert rerank["output_node"]  # so a fully cached re-run still shows its previews
    assert object_info["VisualCriticObjective"]["output"] == ["STRING"]
    assert score["input"]["optional"]["prompt"][1]["forceInput"]  # a link, not a widget: saved workflows keep their widget order
    gated = object_info["VisualCriticGatedKSampler"]
    ksampler = object_info["KSampler"]["input"]["required"]
    assert set(ksampler) <= set(gated["input"]["required"])
    assert gated["input"]["required"]["sampler_name"][0] == ksampler["sampler_name"][0]
    assert gated["output_name"] == ["image", "latent", "seed", "score", "attempts", "candidates", "reports"]
    assert gated["input"]["optional"]["prompt"][1]["forceInput"]


def _widget_names(info: dict) -> list[str]:
    """The node's widget inputs in the order the UI stores their values."""
    names = []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            is_widget = isinstance(spec[0], list) or (spec[0] in WIDGET_TYPES and not (len(spec) > 1 and spec[1].get("forceInput")))
            if is_widget:
                names.append(name)
    return names


def test_workflows_folder_holds_exactly_the_ui_workflows_with_thumbnails():
    """What ComfyUI's template browser lists: every *.json directly in workflows/ (one card each,
    `<name>.jpg` its thumbnail); the API twins live in workflows/api/, which it does not scan."""
    assert not (WORKFLOWS.parent / "example_workflows").exists()  # a second scanned folder doubles every card
    assert sorted(p.name for p in WORKFLOWS.glob("*.json")) == sorted(f"{n}.json" for n in WORKFLOW_NAMES)
    assert sorted(p.name for p in API_WORKFLOWS.glob("*.json")) == sorted(f"{n}.json" for n in WORKFLOW_NAMES)
    for name in WORKFLOW_NAMES:
        assert "nodes" in json.loads((WORKFLOWS / f"{name}.json").read_text())  # UI format
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
            assert thumb.format == "JPEG" and min(thumb.size) >= 200


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_ui_workflow_matches_its_api_twin(object_info, name):
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    api = load_workflow(name)
    nodes = {str(n["id"]): n for n in ui["nodes"]}
    assert {k for k, n in nodes.items() if n["type"] not in VIRTUAL} == set(api)
    links = {link[0]: link for link in ui["links"]}
    assert ui["last_link_id"] == max(links) and ui["last_node_id"] == max(map(int, nodes))
    for node_id, node in api.items():
        ui_node = nodes[node_id]
        assert ui_node["type"] == node["class_type"]
        info = object_info[node["class_type"]]
        by_widget = {}  # widget inputs fed by a link
        for ui_input in ui_node["inputs"]:
            link = links.get(ui_input["link"])
            if link is None:
                continue
            assert ui_node["inputs"][link[4]]["name"] == ui_input["name"] and link[3] == int(node_id)
            source = nodes[str(link[1])]
            assert link[0] in source["outputs"][link[2]]["links"]
            if source["type"] == "PrimitiveNode":  # the frontend writes its value into the widget
                assert node["inputs"][ui_input["name"]] == source["widgets_values"][0], (name, node_id, ui_input["name"])
            else:  # every UI link is the same API link, slot for slot
                assert node["inputs"][ui_input["name"]] == [str(link[1]), link[2]]
                assert link[5] == object_info[source["type"]]["output"][link[2]]
            if "widget" in ui_input:
                by_widget[ui_input["widget"]["name"]] = link
        assert {k for k, v in node["inputs"].items() if isinstance(v, list)} <= {i["name"] for i in ui_node["inputs"]}
        values = iter(ui_node["widgets_values"])
        for widget in _widget_names(info):
            value = next(values)
            if widget not in by_widget:
                assert node["inputs"][widget] == value, (name, node_id, widget)
            if widget in ("seed", "noise_seed"):
                assert next(values) in ("fixed", "randomize", "increment", "decrement")
    positions = [tuple(n["pos"]) for n in ui["nodes"]]
    assert len(set(positions)) == len(positions)


def _objective_of(prompt: dict, node_id: str) -> Objective:
    """The objective a node reads: typed into it or wired from the Objective node."""
    value = prompt[node_id]["inputs"].get("objective_text", prompt[node_id]["inputs"].get("objective"))
    if isinstance(value, list):
        value = prompt[value[0]]["inputs"]["objective"]
    return Objective.parse(value)


def test_best_of_n_puts_the_top_scored_image_first(comfy):
    prompt = with_tiny_model(load_workflow("visualcritic_best_of_n"))
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "raw_candidates"}}
    entry = comfy.run(prompt)
    outputs = entry["outputs"]
    assert len(outputs["8"]["reports"]) == 4  # every image of the batch is scored
    assert len({r["mos"] for r in outputs["8"]["reports"]}) > 1
    indices, scores = outputs["9"]["indices"], outputs["9"]["scores"]
    assert len(indices) == 1
    raw = [read_png(p) for p in comfy.saved_images(entry, "99")]
    best = read_png(comfy.saved_images(entry, "10")[0])
    assert np.array_equal(best, raw[indices[0]])
    # Judged again from the saved files, the image Rerank put first is still the top one.
    objective = _objective_of(prompt, "9")
    assert objective.attribute_weights == {"sharpness": 0.5, "noisiness": -0.5}
    reread = [objective.score(r) for r in load_critic("signal").score(as_batch(raw))]
    assert reread[indices[0]] >= max(reread) - 0.02, (reread, indices)
    assert abs(reread[indices[0]] - scores[0]) < 0.1
    overlaid = [read_png(p) for p in comfy.saved_images(entry, "12")]
    assert len(overlaid) == 4
    for shown, plain in zip(overlaid, raw):
        assert shown.shape == plain.shape and not np.array_equal(shown, plain)
    # The Score node itself shows every image with its scores drawn on, served like any preview:
    # enlarged to 512 px (pixels repeated) so the drawn scores stay legible as thumbnails.
    previews = outputs["8"]["images"]
    assert len(previews) == 4 and all(p["type"] == "temp" for p in previews)
    for preview, plain in zip(previews, raw):
        query = urllib.parse.urlencode({"filename": preview["filename"], "subfolder": "", "type": "temp"})
        with urllib.request.urlopen(f"{comfy.url}/view?{query}", timeout=30) as resp:
            shown = np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB"))
        enlarged = plain.repeat(8, axis=0).repeat(8, axis=1)
        assert shown.shape == enlarged.shape and not np.array_equal(shown, enlarged)
        assert np.abs(shown[-128:, -128:].astype(int) - enlarged[-128:, -128:]).max() <= 1  # outside the badge: the image


def _gated(threshold: float, max_attempts: int, per_attempt: int, sampler: str = "euler_ancestral") -> dict:
    prompt = with_tiny_model(load_workflow("visualcritic_gated_regeneration"))
    prompt["6"]["inputs"].update(threshold=threshold, max_attempts=max_attempts, candidates_per_attempt=per_attempt,
                                 sampler_name=sampler, seed=1234)
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 5], "filename_prefix": "gated_raw"}}
    return prompt


def test_gated_sampler_stops_as_soon_as_the_threshold_is_met(comfy):
    entry = comfy.run(_gated(threshold=1.0, max_attempts=3, per_attempt=1))
    ui = entry["outputs"]["6"]
    assert ui["attempts"] == [1] and ui["seeds"] == [1234]
    assert len(comfy.saved_images(entry, "99")) == 1
    feedback = entry["outputs"]["10"]["text"]
    assert feedback[0].startswith("Why:")
    assert feedback[1].startswith("Revised positive:\n" + load_workflow("visualcritic_gated_regeneration")["10"]["inputs"]["positive"])


def test_gated_sampler_uses_every_attempt_and_each_seed_reproduces_its_image(comfy):
    prompt = _gated(threshold=5.0, max_attempts=2, per_attempt=2)
    entry = comfy.run(prompt)
    ui = entry["outputs"]["6"]
    assert ui["attempts"] == [2]
    assert ui["seeds"] == list(range(1234, 1238))
    assert ui["scores"][ui["best"][0]] == max(ui["scores"])
    candidates = [read_png(p) for p in comfy.saved_images(entry, "99")]
    assert len(candidates) == 4
    best = read_png(comfy.saved_images(entry, "7")[0])
    assert np.array_equal(best, candidates[ui["best"][0]])
    assert len(comfy.saved_images(entry, "9")) == 4  # every candidate with its scores drawn on

    # A plain KSampler with a reported seed alone gives the same image.
    g = prompt["6"]["inputs"]
    plain = {key: copy.deepcopy(prompt[key]) for key in ("1", "2", "3", "4")}
    for n, k in enumerate((ui["best"][0], 3)):
        plain[f"s{n}"] = {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": ui["seeds"][k], **{x: g[x] for x in ("steps", "cfg", "sampler_name", "scheduler", "denoise")}}}
        plain[f"d{n}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"s{n}", 0], "vae": ["1", 2]}}
        plain[f"o{n}"] = {"class_type": "SaveImage", "inputs": {"images": [f"d{n}", 0], "filename_prefix": f"plain{n}"}}
    replay = comfy.run(plain)
    for n, k in enumerate((ui["best"][0], 3)):
        assert np.array_equal(read_png(comfy.saved_images(replay, f"o{n}")[0]), candidates[k]), f"seed {ui['seeds'][k]}"
    assert not np.array_equal(candidates[0], candidates[1])


def test_score_and_sort_runs_as_shipped_and_puts_the_clean_photo_first(comfy):
    """No files needed: the Sample Images node gives a photo, clean then damaged."""
    prompt = load_workflow("visualcritic_score_and_sort")
    entry = comfy.run(prompt)
    kinds = prompt["1"]["inputs"]["damage"].split(", ")
    assert "scikit-image photo 'astronaut'" in entry["outputs"]["1"]["text"][0]  # scikit-image is a test requirement
    ui = entry["outputs"]["5"]
    assert sorted(ui["indices"]) == list(range(len(kinds) + 1))
    assert ui["scores"] == sorted(ui["scores"], reverse=True)
    assert ui["indices"][0] == 0  # the undamaged photo first
    mos = [r["mos"] for r in entry["outputs"]["3"]["reports"]]
    assert ui["scores"] == pytest.approx(sorted(mos, reverse=True))  # its objective is MOS alone
    assert len(ui["images"]) == len(kinds) + 1 and ui["text"][0] == "objective: mos=1"
    report_text = entry["outputs"]["6"]["text"]  # Report sends its summary too: the sorted images, each scored
    assert report_text[0] == "objective: mos=1" and len(report_text) == len(kinds) + 2
    assert [line.split(" | ")[1] for line in report_text[1:]] == [f"score {s:.2f}" for s in ui["scores"]]
    shown = [read_png(p) for p in comfy.saved_images(entry, "7")]
    assert len(shown) == len(kinds) + 1 and len({s.shape for s in shown}) == 1
    # the cached re-run (same graph) still brings Rerank's previews back: it is an output node
    again = comfy.run(prompt)
    assert again["outputs"]["5"]["images"] == ui["images"]


def _score_graph(image_node: dict, loader: dict | None = None) -> dict:
    return {
        "1": image_node,
        "2": {"class_type": "VisualCriticLoader", "inputs": loader or {
            "critic": "signal", "hub_id_or_path": "", "device": "auto", "dtype": "auto", "quantization": "none"}},
        "3": {"class_type": "VisualCriticScore", "inputs": {"images": ["1", 0], "critic": ["2", 0], "describe": False}},
    }


LOADER = {"critic": "signal", "hub_id_or_path": "", "device": "cpu", "dtype": "auto", "quantization": "none"}


@pytest.mark.parametrize("graph, node_type, words", [
    (_score_graph({"class_type": "VCTestBadImage", "inputs": {"kind": "empty"}}), "VisualCriticScore", ["images", "empty batch"]),
    (_score_graph({"class_type": "VCTestBadImage", "inputs": {"kind": "nan"}}), "VisualCriticScore", ["images", "[1]", "NaN"]),
    (_score_graph({"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 2, "color": 0}}),
     "VisualCriticScore", ["images", "1x1 px is too small to judge", "at least 32 px"]),
    (_score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
                  {**LOADER, "hub_id_or_path": "/no/such/critic_folder"}), "VisualCriticLoader", ["/no/such/critic_folder", "does not exist"]),
    ({**_score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}}, LOADER),
      "4": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3, "color": 0}},
      "5": {"class_type": "VisualCriticReport", "inputs": {"images": ["4", 0], "reports": ["3", 0]}},
      "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "bad"}}},
     "VisualCriticReport", ["reports", "2 reports", "3 images"]),
], ids=["empty-batch", "nan-image", "one-pixel-images", "missing-model-folder", "reports-count"])
def test_bad_input_is_a_node_error_and_the_server_goes_on(comfy, graph, node_type, words):
    entry = comfy.run(graph, expect_success=False)
    assert entry["status"]["status_str"] == "error"
    error = comfy.error_of(entry)
    assert error["node_type"] == node_type
    for word in words:
        assert word in error["exception_message"], error["exception_message"]
    good = comfy.run(_score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 8421504}}, LOADER))
    assert len(good["outputs"]["3"]["reports"]) == 1


def test_empty_model_folder_is_a_node_error(comfy, object_info):
    graph = _score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
                         {**LOADER, "critic": "my_critic"})
    entry = comfy.run(graph, expect_success=False)
    error = comfy.error_of(entry)
    assert error["node_type"] == "VisualCriticLoader"
    assert "my_critic" in error["exception_message"]


def test_lmm_checkpoint_folder_is_listed_loaded_and_scores(comfy):
    """A (tiny, random-weight) LLaVA checkpoint under models/visualcritic/ is a choice of the
    Loader and runs through ComfyUI's model management, with descriptions."""
    from visualcritic_core.tiny_models import build_tiny_checkpoint

    build_tiny_checkpoint("llava", comfy.models / "visualcritic" / "tiny_llava", seed=0)
    choices = comfy.get("/object_info/VisualCriticLoader")["VisualCriticLoader"]["input"]["required"]["critic"][0]
    assert "tiny_llava" in choices
    graph = _score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 3355443}},
                         {"critic": "tiny_llava", "hub_id_or_path": "", "device": "auto", "dtype": "auto", "quantization": "none"})
    graph["3"]["inputs"]["describe"] = True
    reports = comfy.run(graph)["outputs"]["3"]["reports"]
    assert len(reports) == 2
    for report in reports:
        assert report["critic"].endswith("tiny_llava")
        assert isinstance(report["description"], str) and 1 <= report["mos"] <= 5
        assert report["ai_generated"] is not None


def test_interrupt_stops_the_gated_sampler_and_the_server_goes_on(comfy):
    prompt = _gated(threshold=5.0, max_attempts=500, per_attempt=1)
    prompt["6"]["inputs"]["seed"] = 777  # not cached from earlier runs
    started = time.monotonic()
    prompt_id = comfy.queue(prompt)
    while not comfy.get("/queue")["queue_running"]:
        time.sleep(0.05)
    time.sleep(2.0)  # well inside the sampling loop
    assert comfy.post("/interrupt") == 200
    entry = comfy.wait(prompt_id, expect_success=False)
    assert time.monotonic() - started < 60
    assert entry["status"]["status_str"] == "error"
    assert any(kind == "execution_interrupted" for kind, _ in entry["status"]["messages"])
    assert "6" not in entry["outputs"]
    assert comfy.run(_gated(threshold=1.0, max_attempts=2, per_attempt=1))["outputs"]["6"]["attempts"] == [1]


def test_the_loader_keeps_its_critic_between_prompts(comfy):
    loader = {**LOADER, "dtype": "float32"}
    for node_id, color in (("41", 0), ("42", 255), ("43", 65280)):  # new node ids: ComfyUI cannot reuse its own output
        graph = _score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}}, loader)
        graph[node_id] = graph.pop("2")
        graph["3"]["inputs"]["critic"] = [node_id, 0]
        comfy.run(graph)
    loads = [line for line in comfy.tail_log(10**7).splitlines()
             if "VisualCritic: loaded critic 'signal' (device cpu, dtype float32" in line]
    assert len(loads) == 1, loads


def test_composed_critic_judges_alignment_through_model_management(comfy):
    """signal + a tiny CLIP from models/visualcritic, composed in the Loader's text box; the
    Score node's prompt link reaches the alignment judge; the two members' weights are one
    ComfyUI-managed module."""
    from tiny_judges import build_tiny_clip

    build_tiny_clip(comfy.models / "visualcritic" / "tiny_clip_judge")
    graph = _score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 3355443}},
                         {"critic": "signal", "hub_id_or_path": "+tiny_clip_judge", "device": "auto", "dtype": "auto",
                          "quantization": "none"})
    graph["4"] = {"class_type": "VCTestText", "inputs": {"text": "a photo of a cat"}}
    graph["3"]["inputs"]["prompt"] = ["4", 0]
    reports = comfy.run(graph)["outputs"]["3"]["reports"]
    assert len(reports) == 2
    for report in reports:
        assert 1 <= report["alignment"] <= 5 and report["sources"]["mos"] == "signal"
        assert report["sources"]["alignment"].endswith("tiny_clip_judge") and "alignment" in report["raw_scores"]
    unprompted = _score_graph({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
                              graph["2"]["inputs"])
    assert comfy.run(unprompted)["outputs"]["3"]["reports"][0]["alignment"] is None
