"""Label what the policy exploits: pick the videos to label next, answer them (demo), merge, retrain.

The loop, one round: score a pool of candidate videos with the current model(s) (`solireward infer`),
pick a batch by a named strategy (`solireward select`: :mod:`solireward.active.strategies` says what each
strategy picks, :mod:`solireward.active.batch` reads the pool and writes the batch), have it labelled
(annotators fill the batch sheet, or `solireward simulate-labels` answers it with the demo's simulated
annotators: :mod:`solireward.active.simulate`), import the answers together with the earlier annotation
files (`solireward labels`), then `pairs` and `train` as usual. A demo pool is the over-optimisation grid
on training prompts written out as mp4 files with its ground truth (`solireward grid-pool`:
:mod:`solireward.active.pool`).

A package of its own rather than part of the reward-hacking lab: a pool may be a user's own policy
samples with no ground truth, and the batch is an annotation file; the lab's grid is one source of pools.
"""
