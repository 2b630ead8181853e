"""The reward-hacking part of the report: the stress-probe table, the over-optimisation table and its curves.

One row per trained cell, named by the ``tags`` that the workflow stores in each cell's ``probe.json`` and
``overopt.json``, in the study's cell order when the study is known (else by tags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from solireward.errors import InputError
from solireward.io import read_json
from solireward.plotting import pyplot, save_figure
from solireward.study import AXES, NO_MITIGATION
from solireward.table import Table

SortKey = Callable[[dict[str, str]], Any]


def load_results(files: Sequence[str | Path], kind: str, required: tuple[str, ...],
                 order: SortKey | None = None) -> list[dict[str, Any]]:
    """The JSON results of `solireward probe` or `overopt`, sorted by `order` of their tags (else by tags)."""
    results = []
    for file in files:
        result = read_json(file)
        if not isinstance(result, dict) or any(key not in result for key in required):
            raise InputError(f"not a {kind} result (expected the keys {', '.join(required)})", file=str(file))
        results.append(result)
    key = order or (lambda tags: tuple(str(tags.get(axis, "")) for axis in AXES))
    return sorted(results, key=lambda r: key(r.get("tags") or {}))


def cell_name(result: dict[str, Any]) -> str:
    """`head / loss [+ mitigation] (label source, pairing)` of a result's tags, or its model folder when it has
    none."""
    tags = result.get("tags") or {}
    if not tags:
        return str(result.get("model", "?"))
    name = " / ".join(tags[k] for k in ("head", "loss") if k in tags)
    if tags.get("mitigation", NO_MITIGATION) != NO_MITIGATION:
        name += f" + {tags['mitigation']}"
    extra = ", ".join(tags[k] for k in ("label_source", "pairing") if k in tags)
    rest = ", ".join(f"{k}={v}" for k, v in tags.items() if k not in AXES)
    return name + (f" ({extra})" if extra else "") + (f" [{rest}]" if rest else "")


def _shift(row: dict[str, Any] | None) -> str:
    """A probe row's mean change and the half-width of its interval, 'n/t' when not tested, '' when absent."""
    if row is None:
        return ""
    if not row.get("tested", True) or row.get("mean_change_std") is None:
        return "n/t"
    interval = row.get("mean_change_std_ci")
    half = f"±{(interval[1] - interval[0]) / 2:.2f}" if interval and None not in interval else ""
    return f"{row['mean_change_std']:+.2f}{half}"


def probe_table(results: Sequence[dict[str, Any]]) -> Table:
    """Mean score change (clean-std units) per perturbation and cell; a flagged verdict in bold."""
    first = results[0]
    names = [row["name"] for row in first["perturbations"]]
    expected = {row["name"]: row["expected"] for row in first["perturbations"]}
    groups = "; ".join(f"{kind}: {', '.join(n for n in names if expected[n] == kind)}"
                       for kind in dict.fromkeys(expected.values()))
    rows, bold, untested = [], [], {}
    for result in results:
        by_name = {row["name"]: row for row in result["perturbations"]}
        cells, flags = [cell_name(result)], [False]
        for name in names:
            row = by_name.get(name)
            if row is not None and not row.get("tested", True):
                untested.setdefault(name, row.get("reason") or "the model's input did not change")
            cells.append(_shift(row))
            flags.append(bool(row and row["flagged"]))
        cells.append(str(sum(row["flagged"] for row in result["perturbations"])))
        flags.append(False)
        rows.append(cells)
        bold.append(flags)
    caption = (f"Stress probe: mean score change under each perturbation, in standard deviations of the clean "
               f"scores ({first['n_videos']} test videos per cell)")
    note = (f"Expected: {groups}. Each cell: mean change ± the half-width of its 95 % interval over the videos. "
            f"Bold: against the expected direction (threshold {first['threshold']:g}; invariant: |change| ≤ t; "
            "lower: change ≤ −t; no_gain: change ≤ t; report: not judged). n/t: not tested, because the "
            "perturbation left the model's input unchanged"
            + (" (" + "; ".join(f"{k}: {v}" for k, v in untested.items()) + ")" if untested else "")
            + ". `solireward probe --help` documents each perturbation.")
    return Table("stress_probe", caption, ["Cell", *names, "Flagged"], rows, bold, 1, note)


def overopt_table(results: Sequence[dict[str, Any]]) -> Table:
    """Per cell and method: gold at the largest KL (peak gold, KL at the peak) and the hacking gap."""
    first = results[0]
    methods = list(first["summary"])
    rows = []
    for result in results:
        cells = [cell_name(result), f"{result['base']['gold']:.2f}"]
        for method in methods:
            s = result["summary"].get(method)
            gap = s and s.get("hacking_gap_ci")
            cells.append("" if s is None else f"{s['gold_at_max_kl']:.2f} ({s['peak_gold']:.2f} @ "
                         f"{s['kl_at_peak']:.1f}) / {s['hacking_gap']:+.2f}"
                         + (f" [{gap[0]:+.2f}, {gap[1]:+.2f}]" if gap else ""))
        rows.append(cells)
    caption = (f"Over-optimisation: best-of-n and GRPO-style optimisation against each model on "
               f"{len(first['prompts'])} held-out prompts × {len(first['settings'][0])} generator settings "
               f"(task {first['task']})")
    note = ("Per method: gold pass rate at the largest KL (peak gold @ the KL where it is reached) / hacking gap "
            "(proxy gain − gold gain at the largest KL, in base std) [its 95 % interval over prompts]. KL is the "
            f"exact KL of each policy from the uniform one over the grid. Base gold rate {first['base']['gold']:.2f}, "
            f"best achievable {first['base']['best_gold']:.2f}.")
    header = ["Cell", "Base gold", *(f"{m}: gold (peak @ KL) / gap" for m in methods)]
    return Table("overoptimisation", caption, header, rows, [[False] * len(header)] * len(rows), 1, note)


def overopt_defect_table(results: Sequence[dict[str, Any]]) -> Table | None:
    """Per cell, the mean proxy (``score_norm``) of the grid's videos of each defect kind, beside its gold rate:
    a kind the proxy ranks with the good ones is what optimisation against it picks (the hacking gap's source).
    None unless every result is on one grid (one task's) whose settings name two defect kinds or more."""
    first = results[0]
    settings = first["settings"][0]  # a grid's columns have one defect kind each, whatever the prompt
    if not all(isinstance(s, dict) and "defect" in s for s in settings) or \
            any(r["settings"] != first["settings"] or r["gold"] != first["gold"] for r in results):
        return None
    kinds = list(dict.fromkeys(s["defect"] for s in settings))
    if len(kinds) < 2:
        return None
    columns = {kind: [i for i, s in enumerate(settings) if s["defect"] == kind] for kind in kinds}
    gold = np.asarray(first["gold"], dtype=float)
    rates = {kind: float(gold[:, idx].mean()) for kind, idx in columns.items()}
    header = ["Cell", *(f"{kind} (gold {rates[kind]:.2f})" for kind in kinds)]
    rows, bold = [], []
    for result in results:
        proxy = np.asarray(result["proxy"], dtype=float)
        means = {kind: round(float(proxy[:, idx].mean()), 2) for kind, idx in columns.items()}  # as shown
        good = [means[k] for k in kinds if rates[k] >= 0.5]
        floor = min(good) if good else np.inf
        rows.append([cell_name(result), *(f"{means[k]:+.2f}" for k in kinds)])
        bold.append([False, *(rates[k] < 0.5 and means[k] >= floor for k in kinds)])
    note = ("Mean proxy (the model's score_norm) over prompts and the other settings of each defect kind of the "
            "grid; the header gives the kind's gold pass rate. Bold: a failing kind that the model scores at or "
            "above a passing kind, which best-of-n and GRPO can exploit.")
    return Table(f"overopt_defects_{first['task']}", f"Over-optimisation grid: the proxy per defect kind "
                 f"(task {first['task']})", header, rows, bold, 1, note)


def overopt_curves(results: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Best-of-n gold pass rate and proxy vs sqrt(KL), one line per cell."""
    plt, sns = pyplot()
    frame = pd.DataFrame([{"cell": cell_name(r), "sqrt_kl": p["sqrt_kl"], "gold": p["gold"], "proxy": p["proxy"]}
                          for r in results for p in r["curves"]["best_of_n"]])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    sns.lineplot(data=frame, x="sqrt_kl", y="gold", hue="cell", marker="o", markersize=3, ax=axes[0], legend=False)
    sns.lineplot(data=frame, x="sqrt_kl", y="proxy", hue="cell", marker="o", markersize=3, ax=axes[1])
    axes[0].axhline(results[0]["base"]["gold"], color="grey", linestyle=":", linewidth=1)
    axes[0].set(xlabel="√KL of best-of-n (nats)", ylabel="gold pass rate")
    axes[1].set(xlabel="√KL of best-of-n (nats)", ylabel="proxy (score_norm)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("Best-of-n against each reward model: ground truth (left) and the model's own reward (right)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


PROBE_KEYS = ("perturbations", "threshold", "n_videos")
OVEROPT_KEYS = ("summary", "curves", "base")
