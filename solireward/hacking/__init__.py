"""The reward-hacking lab: stress probes of a reward model and a proxy-versus-gold over-optimisation experiment.

- :mod:`solireward.hacking.probe`: how a model's score moves under perturbations that should or should
  not move it (``solireward probe``).
- :mod:`solireward.hacking.overopt`: best-of-n and GRPO-style optimisation against the model on a grid
  of demo-generator settings with known ground truth (``solireward overopt``).
- :mod:`solireward.hacking.report`: the study report's stress-probe and over-optimisation tables.
"""
