"""VisualCritic: judge generated images the way people do, and act on it.

    from visualcritic_core import load_critic
    critic = load_critic("signal")
    reports = critic.score(images)   # list[QualityReport]
"""
from .objective import Objective
from .registry import available_critics, load_critic, register_critic
from .report import ATTRIBUTES, QualityReport

__all__ = ["ATTRIBUTES", "Objective", "QualityReport", "available_critics", "load_critic", "register_critic"]
__version__ = "0.1.0"
