"""SoliReward: train, serve and evaluate video reward models."""

__version__ = "0.1.0"
