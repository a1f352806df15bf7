"""Render the template-browser thumbnails `workflows/<name>.jpg` from a real run.

ComfyUI's template browser shows `<name>.jpg` beside each `workflows/<name>.json`. Each
thumbnail is the workflow's scoring part run for real: the built-in `signal` critic scores
scikit-image photos (the clean photo and damaged copies standing in for the candidates a
checkpoint would make), ranks them with the objective the workflow's Objective node holds,
and draws the scored contact sheet, best first (MOS, score and rank in letters big enough for
a template card).

    python scripts/render_thumbnails.py            # needs scikit-image (pip install scikit-image)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from visualcritic_core import Objective, load_critic  # noqa: E402
from visualcritic_core.damage import apply_damage, sample_photos  # noqa: E402
from visualcritic_core.render import contact_sheet  # noqa: E402

WORKFLOWS = REPO / "workflows"
TILE = 256
# Stand-ins for generated candidates where a workflow samples with a checkpoint:
# (photo, [damage kinds], severity), the clean photo first.
CANDIDATES = {
    "visualcritic_best_of_n": ("rocket", ["gaussian_blur", "gaussian_noise", "jpeg"], 2),
    "visualcritic_gated_regeneration": ("chelsea", ["motion_blur", "darken", "gaussian_noise"], 3),
}

OWN_THUMBNAIL = {"visualcritic_local_repair": "scripts/render_local_repair_thumbnail.py"}
"""Workflows whose card shows something else (a quality map), drawn by their own script."""


def _widgets(workflow: dict, node_type: str) -> list | None:
    for node in workflow["nodes"]:
        if node["type"] == node_type:
            return node["widgets_values"]
    return None


def candidates_for(name: str, workflow: dict) -> tuple[torch.Tensor, list[str]]:
    """`[N,3,H,W]` images and their names: the workflow's own Sample Images settings when it has
    that node, else the stand-ins above."""
    sample = _widgets(workflow, "VisualCriticSampleImages")
    if sample is not None:
        scene, size, damage, severity = sample
        kinds = [k.strip() for k in damage.split(",") if k.strip()]
    else:
        scene, kinds, severity = CANDIDATES[name]
        size = TILE
    photo = sample_photos(size=size)[scene]
    images = torch.stack([photo] + [apply_damage(photo, kind, severity) for kind in kinds])
    return images, ["clean"] + kinds


def render(name: str, critic, out_dir: Path = WORKFLOWS) -> Path:
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
    objective_widgets = _widgets(workflow, "VisualCriticObjective")
    objective = Objective.parse(objective_widgets[0] if objective_widgets else None)
    images, labels = candidates_for(name, workflow)
    reports = critic.score(images)
    order = objective.rank(reports)
    sheet = contact_sheet(
        [images[i] for i in order], [reports[i] for i in order],
        labels=[f"{rank}. {labels[i]}" for rank, i in enumerate(order, start=1)],
        scores=[objective.score(reports[i]) for i in order],
        columns=3 if len(order) > 4 else 2, tile=TILE, compact=True,  # cards are small: few, big words
    )
    out = Path(out_dir) / f"{name}.jpg"
    sheet.save(out, quality=88)
    print(f"{out}: {sheet.width}x{sheet.height}, objective {objective.to_text()}, "
          f"best {labels[order[0]]} ({objective.score(reports[order[0]]):.2f})")
    return out


def main() -> None:
    critic = load_critic("signal", device="cpu")
    for path in sorted(WORKFLOWS.glob("*.json")):
        if path.stem in OWN_THUMBNAIL:
            print(f"{path.stem}: drawn by {OWN_THUMBNAIL[path.stem]}")
            continue
        render(path.stem, critic)


if __name__ == "__main__":
    main()
