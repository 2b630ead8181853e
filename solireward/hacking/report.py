"""The study report's reward-hacking part: a stress-probe table, an over-optimisation table and the curves figure.

One row per trained cell (head x loss of the grid, then the pairing and label ablations), named by the
``tags`` that the workflow stores in each cell's ``probe.json`` and ``overopt.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from solireward.errors import InputError
from solireward.io import read_json, write_text

CELL_KEYS = ("task", "head", "loss", "labels", "pairing")


def _load(files: Sequence[str | Path], kind: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    results = []
    for file in files:
        result = read_json(file)
        if not isinstance(result, dict) or any(key not in result for key in required):
            raise InputError(f"not a {kind} result (expected the keys {', '.join(required)})", file=str(file))
        results.append(result)
    return sorted(results, key=lambda r: _order(r.get("tags") or {}))


def _order(tags: dict[str, str]) -> tuple:
    """Grid cells (binary labels, cross-prompt pairs) first, then the ablations; by head and loss within."""
    grid = tags.get("labels", "binary") == "binary" and tags.get("pairing", "cross_prompt") == "cross_prompt"
    return (not grid, tags.get("task", ""), tags.get("labels", ""), tags.get("pairing", ""), tags.get("head", ""),
            tags.get("loss", ""))


def cell_name(result: dict[str, Any]) -> str:
    """`head / loss (labels, pairing)` of a result's tags, or its model folder when it has none."""
    tags = result.get("tags") or {}
    if not tags:
        return str(result.get("model", "?"))
    name = " / ".join(tags[k] for k in ("head", "loss") if k in tags)
    extra = ", ".join(tags[k] for k in ("labels", "pairing") if k in tags)
    rest = ", ".join(f"{k}={v}" for k, v in tags.items() if k not in CELL_KEYS)
    return name + (f" ({extra})" if extra else "") + (f" [{rest}]" if rest else "")


def probe_table(results: Sequence[dict[str, Any]]) -> str:
    """Mean score change (clean-std units) per perturbation and cell; a flagged verdict in bold."""
    names = [row["name"] for row in results[0]["perturbations"]]
    expected = {row["name"]: row["expected"] for row in results[0]["perturbations"]}
    groups = "; ".join(f"{kind}: {', '.join(n for n in names if expected[n] == kind)}"
                       for kind in dict.fromkeys(expected.values()))
    lines = [f"Expected: {groups}.", "", "| cell | " + " | ".join(names) + " | flagged |",
             "|---" * (len(names) + 2) + "|"]
    for result in results:
        rows = {row["name"]: row for row in result["perturbations"]}
        cells = []
        for name in names:
            row = rows.get(name)
            if row is None:
                cells.append("–")
                continue
            value = f"{row['mean_change_std']:+.2f}"
            cells.append(f"**{value}**" if row["flagged"] else value)
        flagged = sum(row["flagged"] for row in result["perturbations"])
        lines.append(f"| {cell_name(result)} | " + " | ".join(cells) + f" | {flagged} |")
    return "\n".join(lines)


def overopt_table(results: Sequence[dict[str, Any]]) -> str:
    """Per cell and method: gold at the largest KL (peak gold, KL at the peak) and the hacking gap."""
    methods = list(results[0]["summary"])
    lines = ["| cell | base gold | " + " | ".join(f"{m}: gold (peak @ KL) / gap" for m in methods) + " |",
             "|---" * (len(methods) + 2) + "|"]
    for result in results:
        cells = []
        for method in methods:
            s = result["summary"].get(method)
            cells.append("–" if s is None else f"{s['gold_at_max_kl']:.2f} ({s['peak_gold']:.2f} @ "
                         f"{s['kl_at_peak']:.1f}) / {s['hacking_gap']:+.2f}")
        lines.append(f"| {cell_name(result)} | {result['base']['gold']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_cells(results: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Best-of-n gold pass rate and proxy vs sqrt(KL), one line per cell (seaborn, Agg), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from solireward.io import atomic_path

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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def hacking_tables(probe_files: Sequence[str | Path], overopt_files: Sequence[str | Path],
                   out_dir: str | Path) -> list[Path]:
    """Write tables/stress_probe.md, tables/overoptimisation.md and figures/overopt_curves.png (for the inputs
    given) under `out_dir`, the layout of `solireward report`; returns the paths written."""
    tables, figures = Path(out_dir) / "tables", Path(out_dir) / "figures"
    written = []
    if probe_files:
        results = _load(probe_files, "probe", ("perturbations", "threshold", "n_videos"))
        first = results[0]
        text = (f"# Stress probe\n\nMean score change under each perturbation, in standard deviations of the clean "
                f"scores ({first['n_videos']} test videos per cell). Bold: against the expected direction "
                f"(threshold {first['threshold']:g}; invariant: |change| ≤ t; lower: change ≤ −t; no_gain: "
                f"change ≤ t; report: not judged). `solireward probe` documents each perturbation.\n\n"
                f"{probe_table(results)}\n")
        write_text(tables / "stress_probe.md", text)
        written.append(tables / "stress_probe.md")
    if overopt_files:
        results = _load(overopt_files, "overopt", ("summary", "curves", "base"))
        first = results[0]
        text = (f"# Over-optimisation\n\nBest-of-n and GRPO-style optimisation against each model on "
                f"{len(first['prompts'])} held-out prompts x {len(first['settings'])} generator settings "
                f"(task {first['task']}). Per method: gold pass rate at the largest KL (peak gold @ the KL where "
                f"it is reached) / hacking gap (proxy gain − gold gain at the largest KL, in base std). Base gold "
                f"rate {first['base']['gold']:.2f}, best achievable {first['base']['best_gold']:.2f}. Curves: "
                "`../figures/overopt_curves.png`.\n\n"
                f"{overopt_table(results)}\n")
        write_text(tables / "overoptimisation.md", text)
        plot_cells(results, figures / "overopt_curves.png")
        written += [tables / "overoptimisation.md", figures / "overopt_curves.png"]
    return written
