"""The Markdown summary and log line of one metrics dict (`solireward evaluate`)."""

from __future__ import annotations

from typing import Any

from solireward.io import markdown_cell
from solireward.table import markdown_table


def summary_line(result: dict[str, Any]) -> str:
    """One line for the log: videos scored, pair accuracy and ROC-AUC."""
    pairs = result["pairs"] or {}
    interval = pairs.get("accuracy_ci")
    ci = f" [{markdown_cell(interval[0])}, {markdown_cell(interval[1])}]" if interval else ""
    return (f"{result['counts']['scored']} of {result['counts']['records']} videos scored; pair accuracy "
            f"{markdown_cell(pairs.get('accuracy'))}{ci} on {pairs.get('win_lose', 0)} win-lose pairs; "
            f"ROC-AUC {markdown_cell(result['video']['roc_auc'])}")


def metrics_markdown(result: dict[str, Any]) -> str:
    """A readable summary of one metrics dict (tables of the values, notes and definitions)."""
    tags = ", ".join(f"{k}={v}" for k, v in result["tags"].items()) or "no tags"
    lines = [f"# Evaluation ({tags})", "",
             f"Scores: `{result['sources']['scores']}` (field `{result['score_field']}`)  ",
             f"Pairs: `{result['sources']['pairs']}`" if result["sources"]["pairs"] else "Pairs: none given", ""]

    def section(title: str, values: dict[str, Any] | None) -> None:
        lines.extend([f"## {title}", ""])
        if values is None:
            lines.extend(["Not computed (no pair file).", ""])
            return
        rows = []
        for key, value in values.items():
            if isinstance(value, dict):   # by_dimension and the in-/cross-prompt subsets: tables below
                continue
            if key == "top_k_prompts":
                value = "; ".join(f"{p['prompt']} ({p['count']})" for p in value or []) or None
            if isinstance(value, list):
                value = "[" + ", ".join(markdown_cell(v) for v in value) + "]"
            rows.append([key, markdown_cell(value)])
        lines.extend([markdown_table(["metric", "value"], rows, n_text_columns=2), ""])

    section("Counts", result["counts"])
    section("Pairs", result["pairs"])
    by_dimension = (result["pairs"] or {}).get("by_dimension")
    if by_dimension:
        keys = list(next(iter(by_dimension.values())))
        lines.extend(["## Pairs per label dimension", "",
                      markdown_table(["dimension", *keys], [[name, *(markdown_cell(values[k]) for k in keys)]
                                                            for name, values in by_dimension.items()]), ""])
    designs = [(f"test pairs {name.replace('_', '-')}", values) for name, values in
               ((k, (result["pairs"] or {}).get(k)) for k in ("in_prompt", "cross_prompt")) if values]
    designs += [(f"all Pass x Fail pairs {name.replace('_', '-')}", values)
                for name, values in (result.get("all_pairs") or {}).items()]
    if designs:
        rows = [[label, values["pairs"], values["prompts"], markdown_cell(values["accuracy"]),
                 "[{}, {}]".format(*map(markdown_cell, values["accuracy_ci"])) if values["accuracy_ci"] else ""]
                for label, values in designs]
        lines.extend(["## Pair accuracy within one prompt and across prompts", "",
                      markdown_table(["pairs", "n", "prompts", "accuracy", "interval"], rows), ""])
    section("Videos", result["video"])
    section("Reward-hacking diagnostics", result["diagnostics"])
    if result["notes"]:
        lines.extend(["## Notes", ""] + [f"- `{k}`: {v}" for k, v in result["notes"].items()] + [""])
    lines.extend(["## Definitions", "",
                  "- accuracy: share of win–lose pairs with r_win > r_lose (equal scores count ½); "
                  "accuracy_cd = C/(C+D) leaves equal scores out; accuracy_ci: " + result["uncertainty_method"],
                  "- accuracy_videoalign / accuracy_with_ties_videoalign: as VideoAlign's calc_accuracy.py computes "
                  "them (d = 0 counts wrong; the tie threshold is scanned over prefixes of the pairs sorted by |d|), "
                  "for comparison with published VideoGen-RewardBench numbers.",
                  "- in-prompt / cross-prompt: pairs whose two videos share a prompt / do not; all Pass x Fail pairs: "
                  "every pair of a scored Pass and a scored Fail video of the score file.",
                  "- accuracy_with_ties: best over ε ≥ 0 of the share of pairs whose predicted relation "
                  "(win if d > ε, tie if |d| ≤ ε, lose if d < −ε; d = r_win − r_lose) matches the label; "
                  "tie_threshold = the smallest best ε; accuracy_with_ties_fixed: at the given tie_epsilon. "
                  "Accuracies with ties are comparable across papers only at a stated ε.",
                  "- roc_auc: P(score of a random Pass > score of a random Fail), ties ½.",
                  "- best_f1: largest F1 of Pass when predicting Pass iff score ≥ best_f1_threshold.",
                  "- spearman: rank correlation of scores and graded labels (binary labels: skipped).",
                  "- pass_score_std / pass_score_iqr: spread of the Pass videos' scores.",
                  "- top_prompts_share: share of the top-k videos held by the most frequent prompts there "
                  "(expected: mean over random draws of k videos).",
                  "- advantage: (r − mean)/std within a prompt; best_is_pass_share: prompts whose top-scored "
                  "video is Pass (expected: mean Pass share).", ""])
    return "\n".join(lines)
