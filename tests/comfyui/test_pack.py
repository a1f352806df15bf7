"""The pack without a ComfyUI server: cheap import, optional dependencies, node logic."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from visualcritic_core import QualityReport

from .server import REPO

NODES = {"VisualCriticLoader", "VisualCriticScore", "VisualCriticRerank", "VisualCriticGatedKSampler",
         "VisualCriticReport", "VisualCriticPromptFeedback", "VisualCriticLanguageModelLoader",
         "VisualCriticQualityMap", "VisualCriticKeepBetter", "VisualCriticObjective", "VisualCriticSampleImages"}
IMPORT_PACK = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location(
    "comfyui_visualcritic", {str(REPO / '__init__.py')!r}, submodule_search_locations=[{str(REPO)!r}])
pack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pack
spec.loader.exec_module(pack)
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd="/", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_pack_is_cheap_and_needs_no_comfyui():
    out = _run(IMPORT_PACK + """
print(sorted(pack.NODE_CLASS_MAPPINGS))
print(sorted(pack.NODE_DISPLAY_NAME_MAPPINGS.values()))
print([m for m in ("transformers", "diffusers", "comfy", "folder_paths", "nodes", "bitsandbytes", "peft", "skimage") if m in sys.modules])
print(pack.WEB_DIRECTORY)
""").splitlines()
    assert eval(out[0]) == sorted(NODES)
    assert (REPO / out[3] / "visualcritic.js").is_file()  # the frontend extension ComfyUI serves
    assert all(name.startswith("VisualCritic") for name in eval(out[1]))
    assert eval(out[2]) == []


def test_missing_optional_dependencies_do_not_stop_the_pack_loading():
    out = _run("""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("transformers", "diffusers", "bitsandbytes", "peft", "accelerate", "skimage"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
""" + IMPORT_PACK + "print(len(pack.NODE_CLASS_MAPPINGS))")
    assert out.strip() == str(len(NODES))


@pytest.fixture(scope="module")
def pack_nodes():
    name = "comfyui_visualcritic_under_test"
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module.NODE_CLASS_MAPPINGS
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _report(mos, sharpness=3.0, noisiness=2.0, ai=0.5):
    return QualityReport(mos=mos, attributes={"sharpness": sharpness, "noisiness": noisiness}, ai_generated=ai, critic="test")


def _widgets(pack_nodes, **changes):
    inputs = pack_nodes["VisualCriticRerank"].INPUT_TYPES()
    values = {k: v[1]["default"] for k, v in inputs["required"].items() if k != "images"}
    values["objective_text"] = inputs["optional"]["objective_text"][1]["default"]
    values.update(changes)
    return values


@pytest.fixture
def comfy_temp(monkeypatch, tmp_path):
    """ComfyUI's folder_paths, as far as the preview images need it."""
    import types

    monkeypatch.setitem(sys.modules, "folder_paths", types.SimpleNamespace(get_temp_directory=lambda: str(tmp_path)))
    return tmp_path


def test_rerank_sorts_by_the_objective_and_carries_latents_and_masks(pack_nodes, comfy_temp):
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 8, 8, 3).clone() / 4
    reports = [_report(2.0, sharpness=5.0), _report(4.0, sharpness=1.0), _report(3.0), _report(3.5, sharpness=4.0)]
    latent = {"samples": torch.arange(4.0).view(4, 1, 1, 1).expand(4, 4, 2, 2).clone(), "batch_index": [10, 11, 12, 13]}
    mask = torch.arange(4.0).view(4, 1, 1).expand(4, 8, 8).clone()
    rerank = pack_nodes["VisualCriticRerank"]()
    shown = rerank.rerank(images, **_widgets(pack_nodes, top_k=3), reports=reports, latent=latent, mask=mask)
    picked, lat, msk, indices, scores, kept = shown["result"]
    previews = [comfy_temp / p["filename"] for p in shown["ui"]["images"]]
    assert len(previews) == 3 and all(p.is_file() for p in previews)  # the kept images, scores drawn on
    assert indices == [1, 3, 2]  # MOS alone
    assert scores == [4.0, 3.5, 3.0]
    assert torch.equal(picked[:, 0, 0, 0], torch.tensor([1, 3, 2]) / 4)
    assert lat["samples"][:, 0, 0, 0].tolist() == [1, 3, 2] and lat["batch_index"] == [11, 13, 12]
    assert msk[:, 0, 0].tolist() == [1, 3, 2]
    assert kept == [reports[i] for i in indices]
    # sharpness weighted in: the sharp ones win
    out = rerank.rerank(images, **_widgets(pack_nodes, top_k=0, objective_text="mos=1, sharpness=2"), reports=reports)["result"]
    assert out[3] == [0, 3, 2, 1]  # (mos + 2·sharpness) / 3: 4.0, 3.83, 3.0, 2.0
    out = rerank.rerank(images, **_widgets(pack_nodes, top_k=1, objective_text="sharpness=1"), reports=reports)["result"]
    assert out[3] == [0]


def test_rerank_minimums_drop_failures_but_keep_one(pack_nodes, comfy_temp):
    images = torch.rand(3, 8, 8, 3)
    reports = [_report(2.0), _report(3.2), _report(3.9)]
    rerank = pack_nodes["VisualCriticRerank"]()
    assert rerank.rerank(images, **_widgets(pack_nodes, top_k=0, objective_text="min:mos=3"), reports=reports)["result"][3] == [2, 1]
    result = rerank.rerank(images, **_widgets(pack_nodes, top_k=0, objective_text="min:mos=4.5"), reports=reports)
    assert result["result"][3] == [2]
    assert any("no image passes" in line for line in result["ui"]["text"])


@pytest.mark.parametrize("call, words", [
    (lambda r, w: r.rerank(torch.rand(3, 8, 8, 3), **w, reports=[_report(3.0)] * 2), ["reports", "2 reports", "3 images"]),
    (lambda r, w: r.rerank(torch.rand(0, 8, 8, 3), **w, reports=[]), ["images", "empty batch"]),
    (lambda r, w: r.rerank(torch.rand(2, 8, 8, 3), **w), ["reports", "critic"]),
    (lambda r, w: r.rerank(torch.rand(2, 8, 8, 3), **w, reports=[_report(3.0)] * 2,
                           latent={"samples": torch.zeros(3, 4, 1, 1)}), ["latent", "3", "2 images"]),
    (lambda r, w: r.rerank(torch.rand(2, 8, 8, 3), **{**w, "objective_text": "mos=x"}, reports=[_report(3.0)] * 2), ["objective_text"]),
    (lambda r, w: r.rerank(torch.rand(2, 8, 8, 3), **{**w, "objective_text": "mos=-1"}, reports=[_report(3.0)] * 2), ["objective_text", "mos_weight"]),
])
def test_rerank_bad_input_names_the_culprit(pack_nodes, call, words):
    with pytest.raises(ValueError) as err:
        call(pack_nodes["VisualCriticRerank"](), _widgets(pack_nodes))
    for word in words:
        assert word in str(err.value)


def test_prompt_feedback_revises_from_the_reports(pack_nodes):
    node = pack_nodes["VisualCriticPromptFeedback"]()
    blurry = [_report(2.0, sharpness=1.5), _report(2.4, sharpness=1.8)]
    positive, negative, reasons, steps_factor, cfg_delta = node.revise(blurry, "a cat", "text")["result"]
    assert positive.startswith("a cat, ") and "sharp" in positive
    assert negative.startswith("text, ") and "blurry" in negative
    assert "soft or blurred" in reasons and steps_factor > 1.0
    shown = node.revise(blurry, "a cat", "text")["ui"]["text"]  # what the node shows (web/visualcritic.js)
    assert shown == [f"Why:\n{reasons}", f"Revised positive:\n{positive}", f"Revised negative:\n{negative}"]
    with pytest.raises(ValueError, match="reports"):
        node.revise([], "a", "b")


@pytest.fixture
def comfy_stubs(monkeypatch, tmp_path):
    """The bits of ComfyUI the Loader's spec resolution and the Score node touch."""
    import types

    models = tmp_path / "models"
    (models / "visualcritic").mkdir(parents=True)
    paths: dict = {}
    folder_paths = types.SimpleNamespace(
        models_dir=str(models), folder_names_and_paths=paths, get_temp_directory=lambda: str(tmp_path),
        add_model_folder_path=lambda name, path: paths.setdefault(name, ([], set()))[0].append(path),
        get_folder_paths=lambda name: paths[name][0])
    mm = types.SimpleNamespace(throw_exception_if_processing_interrupted=lambda: None)
    utils = types.SimpleNamespace(ProgressBar=lambda total: types.SimpleNamespace(update_absolute=lambda *a: None))
    comfy = types.SimpleNamespace(model_management=mm, utils=utils)
    for name, module in (("folder_paths", folder_paths), ("comfy", comfy), ("comfy.model_management", mm),
                         ("comfy.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return models / "visualcritic"


def test_loader_composes_from_spec_text_and_score_takes_a_prompt(pack_nodes, comfy_stubs):
    from tiny_judges import build_tiny_clip

    from visualcritic_core import load_critic
    from visualcritic_core.critics.alignment import CLIPSCORE_PREFIX

    images = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    clip = build_tiny_clip(comfy_stubs / "tiny_clip", agree={CLIPSCORE_PREFIX + "a photo of a cat": images[0].permute(2, 0, 1)})
    resolve = pack_nodes["VisualCriticLoader"]._resolve_spec
    assert resolve("signal", "+tiny_clip") == f"signal+{clip}"  # "+" adds to the dropdown's critic
    assert resolve("tiny_clip", "signal+pyiqa:piqe") == "signal+pyiqa:piqe"  # text replaces it
    assert resolve("signal", "") == "signal"  # old saved workflows: unchanged
    with pytest.raises(ValueError, match="hub_id_or_path: checkpoint folder './nope' does not exist"):
        resolve("signal", "signal+./nope")

    common = sys.modules[pack_nodes["VisualCriticScore"].__module__.rsplit(".", 1)[0] + ".common"]  # the pack's own
    critic = common.CriticHandle(load_critic(f"signal+{clip}", device="cpu"))
    node = pack_nodes["VisualCriticScore"]()
    assert "prompt" in node.INPUT_TYPES()["optional"]
    result = node.score(images, critic, False, prompt="a photo of a cat")["result"]
    assert result[-1][0] == pytest.approx(5.0) and 1.0 <= result[-1][1] <= 5.0  # the alignment output
    assert all(r.sources["alignment"] == str(clip) for r in result[0])
    unprompted = node.score(images, critic, False)["result"]
    assert all(math.isnan(v) for v in unprompted[-1])
    assert any("prompt 5.0" in line for line in node.score(images, critic, False, prompt="a photo of a cat")["ui"]["text"])


def test_objective_node_checks_the_text_and_passes_its_canonical_form(pack_nodes):
    node = pack_nodes["VisualCriticObjective"]()
    shown = node.build(" mos=1 ; noisiness=-0.5, brightness@3=0.3, min:mos=3 ")
    assert shown["result"] == ("mos=1, noisiness=-0.5, brightness@3=0.3, min:mos=3",)
    assert "less noisiness" in shown["ui"]["text"][0] and "mos ≥ 3" in shown["ui"]["text"][0]
    with pytest.raises(ValueError, match="objective: .*sharpnes"):
        node.build("sharpnes=1")


def test_sample_images_are_the_clean_photo_then_one_per_damage(pack_nodes):
    node = pack_nodes["VisualCriticSampleImages"]()
    shown = node.make("coffee", 64, "gaussian_blur, jpeg", 4)
    (batch,) = shown["result"]
    assert batch.shape[0] == 3 and batch.shape[-1] == 3 and max(batch.shape[1:3]) == 64
    assert shown["ui"]["text"][0].startswith("scikit-image photo 'coffee'")
    assert shown["ui"]["text"][1:] == ["#0 clean", "#1 gaussian_blur (severity 4)", "#2 jpeg (severity 4)"]
    assert (batch[1] - batch[0]).abs().mean() > 0.005 and (batch[2] - batch[0]).abs().mean() > 0.001
    with pytest.raises(ValueError, match="'blurr'"):
        node.make("coffee", 64, "blurr", 3)


def test_sample_images_without_scikit_image_are_procedural_and_say_so():
    out = _run("""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "skimage":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
""" + IMPORT_PACK + """
shown = pack.NODE_CLASS_MAPPINGS["VisualCriticSampleImages"]().make("astronaut", 48, "gaussian_noise", 3)
print(shown["ui"]["text"][0]); print(tuple(shown["result"][0].shape))
""").splitlines()
    assert out[0].startswith("procedural dead-leaves scene") and "pip install scikit-image" in out[0]
    assert out[1] == "(2, 48, 48, 3)"


def test_previews_stay_legible_as_thumbnails(pack_nodes, comfy_temp):
    """Score previews are drawn at 512 px with MOS ~1/8 of the side, so it is still ~16 px
    tall where the frontend shows a 128-px thumbnail; tiny images are enlarged first."""
    from visualcritic_core.render import _score_colour

    node = pack_nodes["VisualCriticScore"]()

    class Critic:
        def score(self, images, describe=False, prompt=None):
            return [_report(4.2) for _ in range(images.shape[0])]

    shown = node.score(torch.full((1, 64, 48, 3), 0.5), Critic(), False)
    with Image.open(comfy_temp / shown["ui"]["images"][0]["filename"]) as preview:
        assert preview.size == (384, 512)
        array = np.asarray(preview.convert("RGB")).astype(int)
    colour = np.array(_score_colour(4.2)[:3])
    rows = np.nonzero((np.abs(array - colour).sum(axis=2) < 40).any(axis=1))[0]  # rows with MOS-coloured text
    assert rows.size and rows.max() - rows.min() >= 0.06 * 512  # letters at least ~30 px tall at 512
