"""The study figures: score histograms, the head x loss heatmap, learning curves, over-optimisation curves."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from solireward.errors import InputError
from solireward.evaluation import PASS_THRESHOLD, load_scores
from solireward.io import read_jsonl
from solireward.plotting import pyplot, save_figure
from solireward.reporting.load import FACTORS, _tags
from solireward.study import REPLICATE

def model_names(frame: pd.DataFrame) -> list[str]:
    """A panel title per metrics file: the `model` tag, else the tags that differ among files."""
    if "tag:model" in frame and frame["tag:model"].notna().all():
        return frame["tag:model"].tolist()
    varying = [t for t in _tags(frame) if frame[f"tag:{t}"].nunique(dropna=False) > 1]
    if not varying:
        return [Path(s).stem if len(frame) == 1 else f"{i + 1}: {Path(s).stem}"
                for i, s in enumerate(frame["source"])]
    return [" / ".join(str(r[f"tag:{t}"]) for t in varying if pd.notna(r[f"tag:{t}"])) for _, r in frame.iterrows()]


def match_scores(frame: pd.DataFrame, scores: list[str]) -> list[tuple[int, str]]:
    """(metrics row, score file) pairs: by the recorded score path, else by position."""
    recorded = {str(Path(p).resolve()): i for i, p in enumerate(frame["scores_path"]) if isinstance(p, str)}
    by_path = [(recorded.get(str(Path(s).resolve())), s) for s in scores]
    if all(i is not None for i, _ in by_path):
        return [(int(i), s) for i, s in by_path]
    if len(scores) == len(frame):
        return list(enumerate(scores))
    unmatched = [s for i, s in by_path if i is None]
    raise InputError(f"{len(scores)} score files for {len(frame)} metrics files, and "
                     f"{len(unmatched)} match no recorded score path (e.g. {unmatched[0]}); give them in the "
                     "order of --metrics", field="scores")


def score_histograms(frame: pd.DataFrame, scores: list[str], path: Path) -> str | None:
    """Pass vs Fail score histograms, one panel per model; returns a note when there is nothing to plot."""
    names = model_names(frame)
    parts = []
    for row, file in match_scores(frame, scores):
        table = load_scores(file, frame["score_field"].iloc[row])
        keep = table.valid & np.isfinite(table.label)
        parts.append(pd.DataFrame({"model": names[row], "score": table.score[keep],
                                   "label": np.where(table.label[keep] > PASS_THRESHOLD, "Pass", "Fail")}))
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if data.empty:
        return "no labelled, scored video in the score files"
    plt, sns = pyplot()
    order = list(dict.fromkeys(data["model"]))
    wrap = min(4, len(order))
    grid = sns.FacetGrid(data, col="model", col_order=order, col_wrap=wrap, sharex=False, sharey=False,
                         height=2.6, aspect=1.25)
    grid.map_dataframe(sns.histplot, x="score", hue="label", hue_order=["Pass", "Fail"], bins=20,
                       stat="density", common_norm=False, element="step", palette={"Pass": "C2", "Fail": "C3"})
    grid.set_titles("{col_name}", size=8)
    for ax in grid.axes.flat:
        ax.set_title("\n".join(textwrap.wrap(ax.get_title(), 38)), fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5) for c in ("C2", "C3")]
    grid.set_axis_labels("score", "density")
    top = 1 - 0.4 / grid.figure.get_figheight()  # room for the legend above the panels
    grid.figure.tight_layout(rect=(0, 0, 1, top))
    grid.figure.legend(handles, ["Pass videos", "Fail videos"], loc="upper center", ncol=2, frameon=False,
                       bbox_to_anchor=(0.5, 1.0))
    save_figure(grid.figure, path)
    return None


def accuracy_heatmap(frame: pd.DataFrame, refs: dict[str, str], path: Path) -> str | None:
    """Pair accuracy per head × loss (other factors at reference), one panel per leading-tag group."""
    if "tag:head" not in frame or "tag:loss" not in frame:
        return "needs both the 'head' and 'loss' tags"
    mask = frame["tag:head"].notna() & frame["tag:loss"].notna()
    for other in ("pairing", "labels"):
        if other in refs:
            mask &= frame[f"tag:{other}"] == refs[other]
    sub = frame[mask]
    if sub["tag:head"].nunique() < 2 or sub["tag:loss"].nunique() < 2:
        return "needs at least two heads and two losses (other factors at reference)"
    leading = [t for t in _tags(frame) if t not in FACTORS and sub[f"tag:{t}"].nunique(dropna=False) > 1]
    groups = list(sub.groupby([f"tag:{t}" for t in leading], sort=False)) if leading else [((), sub)]
    plt, sns = pyplot()
    heads = list(dict.fromkeys(sub["tag:head"]))
    losses = list(dict.fromkeys(sub["tag:loss"]))
    size = (len(groups) * (1.2 * len(losses) + 2.5), 0.55 * len(heads) + 1.6)
    fig, axes = plt.subplots(1, len(groups), figsize=size, squeeze=False)
    for ax, (key, part) in zip(axes[0], groups):
        grid = part.pivot_table(index="tag:head", columns="tag:loss", values="pairs.accuracy", aggfunc="mean",
                                dropna=False).reindex(index=heads, columns=losses) * 100
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", cbar=True, ax=ax,
                    cbar_kws={"label": "pair accuracy (%)"}, linewidths=0.5)
        ax.set_xlabel("loss")
        ax.set_ylabel("head")
        ax.tick_params(axis="y", labelrotation=0)
        key = key if isinstance(key, tuple) else (key,)
        if leading:
            ax.set_title(", ".join(f"{t}={k}" for t, k in zip(leading, key)), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return None


def learning_curves(frame: pd.DataFrame, logs: list[str], path: Path) -> str | None:
    """Validation pair accuracy and training loss vs step, a colour per cell, replicates as thin lines."""
    names = model_names(frame.drop(columns=[f"tag:{REPLICATE}"], errors="ignore"))
    parts = []
    for i, log in enumerate(logs):
        rows = pd.DataFrame(read_jsonl(log))
        if rows.empty or "kind" not in rows or "step" not in rows:
            raise InputError("expected the metrics.jsonl of `solireward train` (rows with kind and step)", file=log)
        rows = rows.assign(model=names[i], run=i)
        parts.append(rows)
    data = pd.concat(parts, ignore_index=True)
    train = data[data["kind"] == "train"].dropna(subset=["loss"]) if "loss" in data else data.iloc[:0]
    evals = data[data["kind"] == "eval"].dropna(subset=["eval_accuracy"]) if "eval_accuracy" in data else data.iloc[:0]
    if train.empty and evals.empty:
        return "no train or eval rows in the training logs"
    plt, sns = pyplot()
    from matplotlib.ticker import MaxNLocator

    order = list(dict.fromkeys(names))
    colours = dict(zip(order, sns.color_palette("tab20" if len(order) > 10 else "tab10", len(order))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rows, value, label in ((axes[0], evals, "eval_accuracy", "validation pair accuracy (%)"),
                                   (axes[1], train, "loss", "training loss (moving average)")):
        for model in order:
            runs = rows[rows["model"] == model]
            several = runs["run"].nunique() > 1
            curves = []
            for _, run in runs.groupby("run", sort=False):
                run = run.sort_values("step")
                y = run[value].astype(float) * (100 if value == "eval_accuracy" else 1)
                if value == "loss":
                    y = y.rolling(max(1, round(len(run) / 50)), min_periods=1).mean()
                curves.append(pd.Series(y.to_numpy(), index=run["step"].to_numpy()))
                ax.plot(run["step"], y, color=colours[model], lw=0.7 if several else 1.5, alpha=0.45 if several else 1,
                        marker="o" if value == "eval_accuracy" and not several else None, ms=3,
                        label=None if several else model)
            if several:
                mean = pd.concat(curves, axis=1).mean(axis=1).sort_index()
                ax.plot(mean.index, mean.to_numpy(), color=colours[model], lw=1.8, label=f"{model} (mean)")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        if rows.empty:
            ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_title("Validation (eval rows of metrics.jsonl)", fontsize=9)
    axes[1].set_title("Training (train rows)", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels() if not evals.empty else axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, bbox_inches="tight")
    return None
