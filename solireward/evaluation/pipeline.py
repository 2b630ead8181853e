"""`solireward evaluate` as a function: the options, the metrics dict and its Markdown summary."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from solireward import __version__
from solireward.config import arg
from solireward.errors import ConfigError
from solireward.evaluation.diagnostics import diagnostics
from solireward.evaluation.loading import PairScores, ScoreTable, load_scores, pair_scores
from solireward.evaluation.metrics import PASS_THRESHOLD, best_f1, pair_correct, pair_metrics, roc_auc
from solireward.evaluation.uncertainty import INTERVAL_METHOD, PromptDesign, accuracy_interval
from solireward.io import markdown_cell, relative_path

logger = logging.getLogger(__name__)

MAX_ALL_PAIRS = 2_000_000  # Pass x Fail pairs above this are not enumerated for `all_pairs` (memory)


@dataclasses.dataclass
class EvaluateConfig:
    """Options of `solireward evaluate` (metrics of one score file, optionally on a pair file)."""

    scores: str = arg("score file from `solireward infer` (.json list or .jsonl of records with video_path, "
                      "prompt, optional label in [0, 1], and score or error)")
    output: str = arg("metrics JSON to write; a Markdown summary goes beside it (same name, .md) "
                      "unless --markdown is given")
    pairs: str | None = arg("pair file (win/lose/meta records); each side's score is looked up by video_path. "
                            "Without it only the video-level metrics are computed", None)
    markdown: str | None = arg("Markdown summary file; when unset, --output with the suffix .md", None)
    score_field: str = arg("which score to evaluate: the raw score or the normalised score_norm",
                           "score", choices=("score", "score_norm"))
    top_k: int = arg("number of highest-scoring videos examined by the prompt-concentration diagnostic", 10)
    top_prompts: int = arg("how many of the most frequent prompts among the top-k videos to sum", 3)
    null_samples: int = arg("random draws of k videos for the expected top-prompt share", 200)
    seed: int = arg("random seed of those draws", 0)
    tie_epsilon: float | None = arg("a fixed ε for accuracy with ties (|d| <= ε predicts a tie), reported beside "
                                    "the searched ε; ties are comparable across papers only at a stated ε", None)
    confidence: float = arg("level of the intervals of pair accuracy (pairs sharing a prompt count as dependent)",
                            0.95)

    def __post_init__(self) -> None:
        for name in ("top_k", "top_prompts", "null_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", field=name)
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.confidence}", field="confidence")
        if self.tie_epsilon is not None and self.tie_epsilon < 0:
            raise ConfigError(f"must be >= 0, got {self.tie_epsilon}", field="tie_epsilon")


def design_accuracy(correct: np.ndarray, prompt_a: np.ndarray, prompt_b: np.ndarray,
                    confidence: float) -> dict[str, Any]:
    """Pair count, prompts, accuracy and its interval (``uncertainty.accuracy_interval``) of one set of pairs."""
    interval = accuracy_interval(correct, PromptDesign.of(prompt_a, prompt_b), confidence)
    return {"pairs": int(correct.size), "prompts": int(len(set(prompt_a) | set(prompt_b))),
            "accuracy": float(correct.mean()) if correct.size else None,
            "accuracy_ci": [interval["low"], interval["high"]] if interval else None,
            "design_effect": interval["design_effect"] if interval else None}


def _pair_file_metrics(ps: PairScores, config: EvaluateConfig, notes: dict[str, str]) -> dict[str, Any]:
    """The ``pairs`` section: metrics of the pair file, its interval, and in-/cross-prompt subsets."""
    win_lose = ps.relation != 0
    correct = pair_correct(ps.d[win_lose], ps.relation[win_lose])
    a, b = ps.prompt_win[win_lose], ps.prompt_lose[win_lose]
    pairs = {"in_file": ps.in_file, "skipped_missing": ps.skipped_missing, "skipped_error": ps.skipped_error,
             **pair_metrics(ps.d, ps.relation, config.tie_epsilon)}
    interval = accuracy_interval(correct, PromptDesign.of(a, b), config.confidence)
    pairs.update(accuracy_ci=[interval["low"], interval["high"]] if interval else None,
                 accuracy_se=interval["se"] if interval else None,
                 design_effect=interval["design_effect"] if interval else None,
                 effective_pairs=interval["effective_pairs"] if interval else None,
                 confidence=config.confidence, prompts=int(len(set(a) | set(b))))
    same = np.array([p == q for p, q in zip(a, b)], dtype=bool)
    for name, mask in (("in_prompt", same), ("cross_prompt", ~same)):
        pairs[name] = design_accuracy(correct[mask], a[mask], b[mask], config.confidence)
    if len(ps.labels) > 1:
        pairs["by_dimension"] = {name: pair_metrics(ps.d, rel, config.tie_epsilon) for name, rel in ps.labels.items()}
    if pairs["accuracy"] is None:
        notes["pairs.accuracy"] = "no win–lose pair could be evaluated"
    if pairs["ties"] or ps.labels:
        notes["pairs.accuracy_with_ties"] = (
            "accuracies with ties depend on ε and are not comparable across papers unless ε is stated: "
            f"searched ε = {markdown_cell(pairs['tie_threshold'], 6)}"
            + (f", fixed ε = {config.tie_epsilon}" if config.tie_epsilon is not None else "")
            + f"; VideoAlign's prefix scan: ε = {markdown_cell(pairs['tie_threshold_videoalign'], 6)}")
    if ps.skipped_missing or ps.skipped_error:
        notes["pairs.skipped"] = (f"{ps.skipped_missing} pair(s) name a video missing from the score file, "
                                  f"{ps.skipped_error} have a side without a valid score")
    return pairs


def all_pairs(table: ScoreTable, confidence: float, notes: dict[str, str]) -> dict[str, Any] | None:
    """Accuracy over every Pass × Fail pair of the scored, labelled videos with a prompt: within one prompt
    (the comparison a GRPO group makes) and across prompts; None when there are none."""
    has_prompt = np.array([p is not None for p in table.prompt], dtype=bool)
    usable = table.valid & np.isfinite(table.label) & has_prompt
    is_pass = table.label > PASS_THRESHOLD
    winners, losers = np.flatnonzero(usable & is_pass), np.flatnonzero(usable & ~is_pass)
    if winners.size == 0 or losers.size == 0:
        return None
    if winners.size * losers.size > MAX_ALL_PAIRS:
        notes["all_pairs"] = f"{winners.size} Pass x {losers.size} Fail videos: more than {MAX_ALL_PAIRS} pairs"
        return None
    w, lo = np.repeat(winners, losers.size), np.tile(losers, winners.size)
    prompts = np.asarray(table.prompt, dtype=object)
    correct = pair_correct(table.score[w] - table.score[lo], np.ones(w.size))
    same = prompts[w] == prompts[lo]
    return {name: design_accuracy(correct[mask], prompts[w][mask], prompts[lo][mask], confidence)
            for name, mask in (("in_prompt", same), ("cross_prompt", ~same))}


def evaluate(config: EvaluateConfig, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """All metrics of `config.scores` (and `config.pairs`) as a JSON-ready dict."""
    table = load_scores(config.scores, config.score_field)
    notes: dict[str, str] = {}
    valid = table.valid
    labelled = valid & np.isfinite(table.label)
    is_pass = table.label > PASS_THRESHOLD
    counts = {"records": len(table.video_path), "scored": int(valid.sum()), "errored": int(table.errored.sum()),
              "nonfinite": int(table.nonfinite.sum()), "labelled": int(labelled.sum()),
              "pass": int((labelled & is_pass).sum()), "fail": int((labelled & ~is_pass).sum())}
    if counts["nonfinite"]:
        logger.warning("%d record(s) of %s have a NaN or infinite %s; they are treated as errored",
                       counts["nonfinite"], config.scores, config.score_field)

    pairs = per_pair = None
    if config.pairs:
        ps = pair_scores(config.pairs, table)
        pairs = _pair_file_metrics(ps, config, notes)
        per_pair = {"row": ps.row.tolist(), "prompt_win": ps.prompt_win.tolist(),
                    "prompt_lose": ps.prompt_lose.tolist(), "d": ps.d.tolist(), "relation": ps.relation.tolist()}

    s, y = table.score[labelled], is_pass[labelled]
    both = counts["pass"] > 0 and counts["fail"] > 0
    f1, f1_threshold = best_f1(s, y)
    video: dict[str, Any] = {"roc_auc": roc_auc(s, y), "best_f1": f1, "best_f1_threshold": f1_threshold,
                             "spearman": None, "spearman_pvalue": None}
    if not both:
        notes["video.roc_auc"] = notes["video.best_f1"] = (
            f"needs both Pass and Fail videos with scores; found {counts['pass']} Pass, {counts['fail']} Fail")
    graded = np.unique(table.label[labelled]).size > 2
    if not graded:
        notes["video.spearman"] = "labels are binary (at most two distinct values); see ROC-AUC"
    elif np.unique(s).size < 2:
        notes["video.spearman"] = "all scores are equal"
    else:
        rho = stats.spearmanr(s, table.label[labelled])
        video["spearman"], video["spearman_pvalue"] = float(rho.statistic), float(rho.pvalue)

    return {"tags": dict(tags or {}), "version": __version__,
            "sources": {"scores": relative_path(config.scores, Path(config.output).parent),
                        "pairs": relative_path(config.pairs, Path(config.output).parent) if config.pairs else None},
            "score_field": config.score_field, "uncertainty_method": INTERVAL_METHOD, "counts": counts,
            "pairs": pairs, "all_pairs": all_pairs(table, config.confidence, notes), "video": video,
            "diagnostics": diagnostics(table, config.top_k, config.top_prompts, config.null_samples, config.seed,
                                       notes),
            "notes": notes, "per_pair": per_pair}
