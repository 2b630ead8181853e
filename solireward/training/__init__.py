"""Training: pair files → batches (in-batch pairs or a pairs file's pairs) → reward-model optimisation.

`solireward train` (:mod:`solireward.commands.train`) parses the options of
:mod:`solireward.training.config` and runs :class:`solireward.training.trainer.Trainer`.
"""
