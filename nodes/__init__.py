"""ComfyUI adapters over visualcritic_core, one concern per module.

Imported only relatively from the pack root (ComfyUI has its own top-level `nodes`);
ComfyUI itself is imported inside the node functions.
"""
from .gated_sampler import VisualCriticGatedKSampler
from .keep_better import VisualCriticKeepBetter
from .language_model import VisualCriticLanguageModelLoader
from .loader import VisualCriticLoader
from .objective import VisualCriticObjective
from .prompt_feedback import VisualCriticPromptFeedback
from .quality_map import VisualCriticQualityMap
from .report import VisualCriticReport
from .rerank import VisualCriticRerank
from .sample_images import VisualCriticSampleImages
from .score import VisualCriticScore

NODE_CLASS_MAPPINGS = {
    "VisualCriticLoader": VisualCriticLoader,
    "VisualCriticScore": VisualCriticScore,
    "VisualCriticRerank": VisualCriticRerank,
    "VisualCriticGatedKSampler": VisualCriticGatedKSampler,
    "VisualCriticReport": VisualCriticReport,
    "VisualCriticPromptFeedback": VisualCriticPromptFeedback,
    "VisualCriticLanguageModelLoader": VisualCriticLanguageModelLoader,
    "VisualCriticQualityMap": VisualCriticQualityMap,
    "VisualCriticKeepBetter": VisualCriticKeepBetter,
    "VisualCriticObjective": VisualCriticObjective,
    "VisualCriticSampleImages": VisualCriticSampleImages,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VisualCriticLoader": "VisualCritic Loader",
    "VisualCriticScore": "VisualCritic Score",
    "VisualCriticRerank": "VisualCritic Rerank",
    "VisualCriticGatedKSampler": "VisualCritic Gated KSampler",
    "VisualCriticReport": "VisualCritic Report",
    "VisualCriticPromptFeedback": "VisualCritic Prompt Feedback",
    "VisualCriticLanguageModelLoader": "VisualCritic Language Model Loader",
    "VisualCriticQualityMap": "VisualCritic Quality Map",
    "VisualCriticKeepBetter": "VisualCritic Keep Better",
    "VisualCriticObjective": "VisualCritic Objective",
    "VisualCriticSampleImages": "VisualCritic Sample Images",
}
