"""Train your own VisualCritic: the paper's curriculum, with LoRA, on any supported LMM.

- `data`: label-file adapters (generic CSV/JSONL, KonIQ-10k, SPAQ, KADID-10k, LIVE-C,
  AGIQA-3K) → `Sample`s with scores normalised to 1..5;
- `curriculum`: relativity pairs (within one dataset), absolute level targets,
  descriptions and AI-vs-photo;
- `config`: `TrainConfig` (JSON/YAML); `trainer`: `CriticTrainer`;
- `demo`: the CPU demo on damaged scikit-image photos (`train-demo`).

Run with `python -m visualcritic_core train --config FILE`.
"""
