"""Reward-hacking diagnostics of one score file: score spread, prompt concentration, GRPO group advantages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from solireward.evaluation.loading import ScoreTable
from solireward.evaluation.metrics import PASS_THRESHOLD

def group_advantages(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, int, int]:
    """GRPO advantage (r − mean)/std (population std) within each group.

    Returns (advantage per video, NaN in groups of one video or of equal scores; number of groups of
    ≥ 2 videos; number of those whose scores are all equal).
    """
    frame = pd.DataFrame({"g": groups, "s": scores})
    grouped = frame.groupby("g", sort=False)["s"]
    size, mean, std = grouped.transform("size"), grouped.transform("mean"), grouped.transform("std", ddof=0)
    usable = (size >= 2) & (std > 0)
    advantage = np.where(usable, (frame["s"] - mean) / std.where(usable, 1.0), np.nan)
    sizes, stds = grouped.size(), grouped.std(ddof=0)
    return advantage, int((sizes >= 2).sum()), int(((sizes >= 2) & (stds == 0)).sum())


def top_prompt_share(scores: np.ndarray, groups: np.ndarray, top_k: int, top_prompts: int,
                     null_samples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Share of the top-k videos held by the `top_prompts` most frequent prompts there, and its null."""
    n = scores.size
    k = min(top_k, n)
    codes, names = pd.factorize(pd.Series(groups, dtype=object))
    top = np.argsort(-scores, kind="stable")[:k]
    counts = np.bincount(codes[top], minlength=len(names))
    leaders = np.argsort(-counts, kind="stable")[:top_prompts]
    observed = counts[leaders].sum() / k
    rng = np.random.default_rng(seed)
    shares = []
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, null_samples, chunk):
        r = min(chunk, null_samples - start)
        draw = rng.random((r, n)).argpartition(k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (r, 1))
        flat = (np.arange(r)[:, None] * len(names) + codes[draw]).ravel()
        per_row = np.bincount(flat, minlength=r * len(names)).reshape(r, len(names))
        m = min(top_prompts, len(names))
        shares.append(np.partition(per_row, len(names) - m, axis=1)[:, len(names) - m:].sum(axis=1) / k)
    return {"top_k": int(k), "top_prompts_share": float(observed),
            "top_prompts_share_expected": float(np.concatenate(shares).mean()),
            "top_k_prompts": [{"prompt": str(names[i]), "count": int(counts[i])} for i in leaders if counts[i] > 0]}


def diagnostics(table: ScoreTable, top_k: int, top_prompts: int, null_samples: int, seed: int,
                notes: dict[str, str]) -> dict[str, Any]:
    """The ``diagnostics`` section of the metrics (definitions in the package docstring); adds notes."""
    valid = table.valid
    labelled = valid & np.isfinite(table.label)
    is_pass = table.label > PASS_THRESHOLD
    out: dict[str, Any] = {"score_std": float(table.score[valid].std()) if valid.any() else None,
                           "pass_score_std": None, "pass_score_iqr": None}
    pass_scores = table.score[labelled & is_pass]
    if pass_scores.size >= 2:
        q25, q75 = np.percentile(pass_scores, [25, 75])
        out.update(pass_score_std=float(pass_scores.std()), pass_score_iqr=float(q75 - q25))
    else:
        notes["diagnostics.pass_score_std"] = f"needs at least two scored Pass videos, found {pass_scores.size}"

    has_prompt = valid & np.array([p is not None for p in table.prompt], dtype=bool)
    keys = ("top_k", "top_prompts_share", "top_prompts_share_expected", "top_k_prompts", "groups",
            "groups_constant", "mean_abs_advantage_pass", "mean_abs_advantage_fail", "mean_advantage_pass",
            "mean_advantage_fail", "best_is_pass_share", "best_is_pass_expected", "groups_with_both")
    out.update(dict.fromkeys(keys))
    if not has_prompt.any():
        notes["diagnostics.prompts"] = "no scored video has a prompt; prompt diagnostics skipped"
        return out
    prompts = np.array([p for p, h in zip(table.prompt, has_prompt) if h], dtype=object)
    scores, labels = table.score[has_prompt], table.label[has_prompt]
    out.update(top_prompt_share(scores, prompts, top_k, top_prompts, null_samples, seed))
    advantage, n_groups, n_constant = group_advantages(scores, prompts)
    out.update(groups=n_groups, groups_constant=n_constant)
    lab = np.isfinite(labels) & np.isfinite(advantage)
    for name, mask in (("pass", lab & (labels > PASS_THRESHOLD)), ("fail", lab & (labels <= PASS_THRESHOLD))):
        if mask.any():
            out[f"mean_abs_advantage_{name}"] = float(np.abs(advantage[mask]).mean())
            out[f"mean_advantage_{name}"] = float(advantage[mask].mean())
    frame = pd.DataFrame({"g": prompts, "s": scores, "p": labels > PASS_THRESHOLD})[np.isfinite(labels)]
    per_group = frame.groupby("g", sort=False)["p"].agg(["sum", "size"])
    both = per_group.index[(per_group["sum"] > 0) & (per_group["sum"] < per_group["size"])]
    out["groups_with_both"] = int(len(both))
    if len(both):
        sub = frame[frame["g"].isin(both)]
        best = sub.loc[sub.groupby("g", sort=False)["s"].idxmax(), "p"]
        share = per_group.loc[both, "sum"] / per_group.loc[both, "size"]
        out.update(best_is_pass_share=float(best.mean()), best_is_pass_expected=float(share.mean()))
    else:
        notes["diagnostics.best_is_pass_share"] = "no prompt has both a scored Pass and a scored Fail video"
    return out

