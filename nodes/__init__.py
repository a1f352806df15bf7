"""ComfyUI adapters over visualcritic_core, one concern per module.

Imported only relatively from the pack root (ComfyUI has its own top-level `nodes`);
ComfyUI itself is imported inside the node functions.
"""
from .gated_sampler import VisualCriticGatedKSampler
from .language_model import VisualCriticLanguageModelLoader
from .loader import VisualCriticLoader
from .prompt_feedback import VisualCriticPromptFeedback
from .report import VisualCriticReport
from .rerank import VisualCriticRerank
from .score import VisualCriticScore

NODE_CLASS_MAPPINGS = {
    "VisualCriticLoader": VisualCriticLoader,
    "VisualCriticScore": VisualCriticScore,
    "VisualCriticRerank": VisualCriticRerank,
    "VisualCriticGatedKSampler": VisualCriticGatedKSampler,
    "VisualCriticReport": VisualCriticReport,
    "VisualCriticPromptFeedback": VisualCriticPromptFeedback,
    "VisualCriticLanguageModelLoader": VisualCriticLanguageModelLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VisualCriticLoader": "VisualCritic Loader",
    "VisualCriticScore": "VisualCritic Score",
    "VisualCriticRerank": "VisualCritic Rerank",
    "VisualCriticGatedKSampler": "VisualCritic Gated KSampler",
    "VisualCriticReport": "VisualCritic Report",
    "VisualCriticPromptFeedback": "VisualCritic Prompt Feedback",
    "VisualCriticLanguageModelLoader": "VisualCritic Language Model Loader",
}
