"""Reward models: backbone families, prompt building, reward heads and the saved reward-model format."""

from solireward.models.families import FAMILIES, Family, detect_family, get_family
from solireward.models.heads import DEFAULT_HEAD, HEADS
from solireward.models.reward_model import RewardCollator, RewardModel, RewardModelConfig

__all__ = ["FAMILIES", "Family", "detect_family", "get_family", "DEFAULT_HEAD", "HEADS", "RewardCollator",
           "RewardModel", "RewardModelConfig"]
