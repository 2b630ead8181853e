"""`solireward evaluate`: pair accuracy, ROC-AUC, F1 and reward-hacking diagnostics of a score file.

Modules: ``loading`` (the input files), ``metrics`` (pair and video metrics), ``uncertainty``
(intervals and paired tests), ``diagnostics`` (reward hacking), ``pipeline`` (the command as a
function), ``markdown`` (its summary). Everything below is importable from ``solireward.evaluation``.

Inputs. ``--scores`` is the output of ``solireward infer``: a list of records with ``video_path``,
``prompt`` (optional), ``label`` (optional; a quality in [0, 1], Pass when > 0.5) and ``score`` (or
``score_norm`` with ``--score_field``), or an ``error`` field instead of a score. A record whose score
is NaN/inf is counted as ``nonfinite`` and treated like an errored one. ``--pairs`` is a pair file
(``{"win": REC, "lose": REC, "meta": {"win": {"quality": q}, "lose": {"quality": q}}}``); each side's
score is looked up by ``video_path`` (by ``video_path`` and ``prompt`` when the score file holds the
same video more than once). The label of a pair is the sign of q_win − q_lose: +1 (win), 0 (tie) or
−1 (the "lose" side is better); a pair without ``meta`` is a win–lose pair. A pair with a side that
is missing from the score file or has no valid score is counted and skipped.

Metrics (with d = r_win − r_lose for a pair and r the chosen score field):

- ``pairs.accuracy`` (pair accuracy without ties, the paper's "RM ACC"): over the pairs whose label
  is not a tie, the share with sign(d) equal to the label; d = 0 counts ½ (the expected accuracy of
  breaking the tie at random). ``pairs.accuracy_cd`` = C/(C+D) leaves the d = 0 pairs out instead
  (C concordant, D discordant; ``score_ties`` counts the others).
- ``pairs.accuracy_ci``: a ``--confidence`` interval of ``pairs.accuracy`` that counts pairs sharing a
  prompt as dependent (``uncertainty``: dyadic cluster-robust variance over prompts, Wilson interval at
  the effective number of pairs ``pairs.effective_pairs``; ``pairs.accuracy_se``, ``pairs.design_effect``
  = pairs / effective pairs, never below the cluster-aware floor near 0 and 100 %). A side without a prompt
  is its own prompt.
- ``pairs.in_prompt`` / ``pairs.cross_prompt``: ``{pairs, prompts, accuracy, accuracy_ci,
  design_effect}`` over the win–lose pairs of the pair file whose two sides have the same prompt / two
  different prompts. ``all_pairs.in_prompt`` / ``all_pairs.cross_prompt``: the same over every
  (scored Pass video, scored Fail video) pair of the score file's labelled videos with a prompt, within
  one prompt (the comparison a GRPO group makes; the layout of public benchmarks) and across prompts
  (null when the score file has no such pairs, or more than ``MAX_ALL_PAIRS``).
- ``pairs.accuracy_with_ties`` (VideoGen-RewardBench): over all evaluated pairs, the largest share
  of pairs whose predicted relation (win when d > ε, tie when |d| ≤ ε, lose when d < −ε) equals the
  label, maximised over ε ≥ 0. Only ε = 0 and the values of |d| change the prediction, so exactly
  those candidates are tried; ``pairs.tie_threshold`` is the smallest best ε.
  ``pairs.accuracy_with_ties_fixed`` is the same share at the fixed ε ``--tie_epsilon`` when given.
  Accuracies with ties are comparable across papers only at a stated ε (the notes say so).
- ``pairs.accuracy_videoalign``, ``pairs.accuracy_with_ties_videoalign``, ``pairs.tie_threshold_videoalign``:
  the same two accuracies as VideoAlign's ``calc_accuracy.py`` computes them, for comparison with
  published VideoGen-RewardBench tables: without ties C/(C+D) with d = 0 counted wrong; with ties the
  pairs sorted by |d| (stable) and the best over k ≥ 1 of "the first k predicted tie, the rest by sign"
  (``metrics.videoalign_accuracy``).
- ``pairs.by_dimension``: the pair metrics per label dimension when the pairs carry
  ``meta.labels`` with several dimensions ({dimension: +1, 0, −1 or null = not judged}, as ``solireward import-bench``
  writes them for VideoGen-RewardBench).
- ``per_pair``: the evaluated pairs' file rows (1-based), prompts, d and relation, for the paired
  tests of ``solireward report``.
- ``video.roc_auc``: probability that a random Pass video scores above a random Fail video, ties
  counting ½ (Mann–Whitney U / (n_pass·n_fail), from average ranks). Null with a reason unless
  both classes are present.
- ``video.best_f1``: the largest F1 of the Pass class when a video is predicted Pass iff
  score ≥ t, over every score value t (``video.best_f1_threshold``; the highest t on ties).
- ``video.spearman``: Spearman rank correlation of scores and labels, only when the labels take
  more than two distinct values (graded); null otherwise.
- Reward-hacking diagnostics (``diagnostics``):
  ``pass_score_std`` / ``pass_score_iqr``: population standard deviation and interquartile range
  (75th − 25th percentile, linear interpolation) of the Pass videos' scores (``score_std``: of all
  videos, for scale). ``top_prompts_share``: among the ``--top_k`` highest-scoring videos (ties
  broken by file order), the share held by the ``--top_prompts`` prompts with most videos there;
  ``top_prompts_share_expected`` is its mean over ``--null_samples`` random draws of k scored videos
  (seeded), i.e. what a reward with no preference among prompts would give. Group advantage
  (GRPO): within each prompt with ≥ 2 scored videos, a = (r − mean)/std (population std); groups of
  equal scores give no advantage and are counted in ``groups_constant``. ``mean_abs_advantage_pass``
  / ``_fail`` (and the signed means) average a over Pass / Fail videos of the other groups;
  ``best_is_pass_share`` is, over prompts with both a labelled Pass and Fail video, the share whose
  highest-scoring labelled video (first in file order on ties) is a Pass, next to
  ``best_is_pass_expected``, the mean Pass share of those groups (a random pick).
- ``counts``: records, scored, errored (an ``error`` field), nonfinite, labelled, pass, fail.

The metrics JSON also holds ``tags`` (``--tag``), ``version``, ``score_field``, ``uncertainty_method``
(the sentence naming the interval and test method, ``uncertainty.INTERVAL_METHOD``) and ``sources``:
the score and pair files, relative to the metrics file's folder (a study folder stays valid when moved).
"""

from solireward.evaluation.diagnostics import diagnostics, group_advantages, top_prompt_share
from solireward.evaluation.loading import PairScores, ScoreTable, load_scores, pair_scores
from solireward.evaluation.markdown import metrics_markdown, summary_line
from solireward.evaluation.metrics import (PASS_THRESHOLD, accuracy_at_epsilon, accuracy_with_ties, best_f1,
                                           pair_accuracy, pair_correct, pair_metrics, roc_auc, videoalign_accuracy)
from solireward.evaluation.pipeline import EvaluateConfig, all_pairs, design_accuracy, evaluate
from solireward.evaluation.uncertainty import (INTERVAL_METHOD, PromptDesign, accuracy_interval, method_footnote,
                                               paired_test, pooled_seed_variance, replicate_interval,
                                               sum_variance)

__all__ = ["EvaluateConfig", "INTERVAL_METHOD", "PASS_THRESHOLD", "PairScores", "PromptDesign", "ScoreTable",
           "accuracy_at_epsilon", "accuracy_interval", "accuracy_with_ties", "all_pairs", "best_f1",
           "design_accuracy", "diagnostics", "evaluate", "group_advantages", "load_scores", "method_footnote",
           "metrics_markdown", "pair_accuracy", "pair_correct", "pair_metrics", "pair_scores", "paired_bootstrap",
           "paired_test", "pooled_seed_variance", "replicate_interval", "roc_auc", "sum_variance", "summary_line", "top_prompt_share",
           "videoalign_accuracy"]
