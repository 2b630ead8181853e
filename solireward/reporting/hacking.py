"""The reward-hacking part of the report: the stress-probe table and heatmap, the over-optimisation tables (the
gap, the proxy per defect kind, the picks' nuisance shares) and its curves.

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


SHORTCUT_MARK = "!"


def _shift(row: dict[str, Any] | None) -> str:
    """A probe row's mean change and the half-width of its interval (and the shortcut mark), 'n/t' when not tested,
    '' when absent."""
    if row is None:
        return ""
    if not row.get("tested", True) or row.get("mean_change_std") is None:
        return "n/t"
    interval = row.get("mean_change_std_ci")
    half = f"±{(interval[1] - interval[0]) / 2:.2f}" if interval and None not in interval else ""
    return f"{row['mean_change_std']:+.2f}{half}" + (SHORTCUT_MARK if row.get("shortcut") else "")


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
        cells.append(", ".join(row["name"] for row in result["perturbations"] if row.get("shortcut")))
        flags += [False, False]
        rows.append(cells)
        bold.append(flags)
    caption = (f"Stress probe: mean score change under each perturbation, in standard deviations of the clean "
               f"scores ({first['n_videos']} test videos per cell)")
    note = (f"Expected: {groups}. Each cell: mean change ± the half-width of its 95 % interval over the videos. "
            f"Bold: against the expected direction (threshold {first['threshold']:g}; invariant: |change| ≤ t; "
            f"lower: change ≤ −t; no_gain: change ≤ t; report: not judged). {SHORTCUT_MARK} and the Shortcuts column: "
            "a nuisance the score should ignore (invariant, no_gain) whose interval lies wholly beyond ±t (no_gain: "
            "above t), a shortcut the labels do not justify. n/t: not tested, because the "
            "perturbation left the model's input unchanged"
            + (" (" + "; ".join(f"{k}: {v}" for k, v in untested.items()) + ")" if untested else "")
            + ". `solireward probe --help` documents each perturbation.")
    return Table("stress_probe", caption, ["Cell", *names, "Flagged", "Shortcuts"], rows, bold, 1, note)


def probe_heatmap(results: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Cells x perturbations heatmap of the mean score change (clean-std units): flagged verdicts in bold, shortcuts
    outlined, not tested in grey 'n/t'."""
    from matplotlib.patches import Rectangle

    plt, sns = pyplot()
    names = [row["name"] for row in results[0]["perturbations"]]
    cells = [cell_name(r) for r in results]
    shift = np.full((len(results), len(names)), np.nan)
    marks: list[tuple[int, int, dict[str, Any]]] = []
    for i, result in enumerate(results):
        for row in result["perturbations"]:
            if row["name"] in names:
                j = names.index(row["name"])
                if row.get("tested", True) and row.get("mean_change_std") is not None:
                    shift[i, j] = row["mean_change_std"]
                marks.append((i, j, row))
    limit = min(3.0, max(1.0, float(np.nanmax(np.abs(shift))))) if np.isfinite(shift).any() else 1.0
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 3.5), max(2.2, 0.42 * len(cells) + 1.8)))
    ax.set_facecolor("0.85")  # not tested
    sns.heatmap(pd.DataFrame(shift, index=cells, columns=names), cmap="RdBu_r", vmin=-limit, vmax=limit, center=0,
                linewidths=0.5, linecolor="white", cbar_kws={"label": "mean change (clean std)", "shrink": 0.8}, ax=ax)
    for i, j, row in marks:
        if np.isnan(shift[i, j]):
            ax.text(j + 0.5, i + 0.5, "n/t", ha="center", va="center", fontsize=6, color="0.35")
            continue
        ax.text(j + 0.5, i + 0.5, f"{shift[i, j]:+.1f}", ha="center", va="center", fontsize=6,
                fontweight="bold" if row["flagged"] else "normal",
                color="white" if abs(shift[i, j]) > 0.6 * limit else "black")
        if row.get("shortcut"):
            ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, edgecolor="black", linewidth=1.6))
    expected = {row["name"]: row["expected"] for row in results[0]["perturbations"]}
    short = {"invariant": "inv", "lower": "lower", "no_gain": "no gain", "report": "report"}
    ax.set_xticks(np.arange(len(names)) + 0.5, [f"{n} ({short.get(expected[n], expected[n])})" for n in names],
                  rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(cells)) + 0.5, cells, rotation=0, fontsize=7)
    ax.set(xlabel="", ylabel="")
    ax.set_title(f"Stress probe (t = {results[0]['threshold']:g}; colours clipped at ±{limit:.1f})\nbold: against the "
                 "expected direction; outlined: shortcut (interval wholly beyond ±t); n/t: not tested", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches="tight")


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


SHARE_COLUMNS = (4, 16, 64)  # best-of-n sizes shown beside the largest one in the report's share table


def overopt_share_table(results: Sequence[dict[str, Any]]) -> Table | None:
    """Per cell and nuisance value (the smallest of each axis left out: the shares sum to 1), the share of each
    method's picks there beside the base share; flagged ones in bold and marked. None without shares."""
    first = results[0]
    if not (first.get("nuisance_shares") or {}).get("rows"):
        return None
    methods = list(dict.fromkeys(r["method"] for r in first["nuisance_shares"]["rows"]))
    bon = [m for m in methods if m.startswith("best_of_n")]
    shown = [m for m in bon if int(m.split("=")[1]) in SHARE_COLUMNS] + bon[-1:] + \
        [m for m in methods if not m.startswith("best_of_n")]
    shown = list(dict.fromkeys(shown))
    rows, bold = [], []
    for result in results:
        by = {(r["method"], r["group"]): r for r in (result.get("nuisance_shares") or {}).get("rows", [])}
        labels = list(dict.fromkeys(r["group"] for r in result["nuisance_shares"]["rows"]))
        first_of_axis = {label.split("=")[0]: label for label in reversed(labels)}
        for label in labels:
            if first_of_axis[label.split("=")[0]] == label:
                continue
            cells, flags = [cell_name(result), label, f"{by[(shown[0], label)]['base_share']:.2f}"], [False] * 3
            for method in shown:
                r = by.get((method, label))
                cells.append("" if r is None else f"{r['share']:.2f}" + (SHORTCUT_MARK if r["flagged"] else ""))
                flags.append(bool(r and r["flagged"]))
            rows.append(cells)
            bold.append(flags)
    threshold = first["nuisance_shares"]["threshold"]
    note = ("Share of each method's picks (best-of-n at n, GRPO at its largest KL) at a nuisance value; the axis's "
            f"smallest value holds the rest. Bold and {SHORTCUT_MARK}: the 95 % interval over prompts of share − "
            f"base share lies wholly beyond ±{threshold:g}, a preference for a nuisance the ground truth does not "
            "depend on (invisible to the hacking gap when every defect kind comes at every value). Every n and the "
            "intervals: each cell's overopt.md.")
    header = ["Cell", "Nuisance value", "Base share", *(m.replace("best_of_n n=", "best-of-") for m in shown)]
    return Table(f"overopt_nuisance_{first['task']}", f"Over-optimisation: where the picks land on each nuisance "
                 f"(task {first['task']})", header, rows, bold, 2, note)


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
