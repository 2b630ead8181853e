"""`solireward report`: the paper's tables and figures, built from `solireward evaluate` outputs.

Each metrics file carries ``tags`` (``--tag`` of ``evaluate``). Four tags are *factors* of the
study, each with its own table: ``head`` (accuracy per reward head, the paper's Table 5), ``loss``
(per loss, Table 3), ``pairing`` (cross-prompt vs in-prompt) and ``labels`` (binary vs pairwise).
A factor's table varies that factor and holds every other factor at its *reference* value: the
value given with ``--reference key=value``, else the most frequent value among the metrics files
(first seen on a tie), so a heads × losses grid plus one-factor ablations yields the intended
comparisons. Where the factor does not vary at the references (pairwise labels exist only as
in-prompt pairs), the other factors are held at the values under which it varies most, and the
caption says which. Other tags that still differ among the rows (e.g. ``task``) become leading columns.
A factor with fewer than two values there gets no table, only a note in ``README.md``. Columns
are test pair accuracy, accuracy with ties and ROC-AUC, in percent; the best value of each column
(within each group of leading columns) is bold. ``all_results`` lists every metrics file.

Figures (seaborn, Agg backend): ``score_histograms.png``, one panel per model with the score
distributions of its Pass and Fail videos, and ``heatmap_head_loss.png``, pair accuracy per head ×
loss cell (other factors at reference). Score files (``--scores``) are matched to metrics files by
the score path each metrics file records (``sources.scores``), otherwise by position (the n-th
score file belongs to the n-th metrics file; the counts must then be equal). A panel is titled by
the ``model`` tag when present, else by the tags that differ among the metrics files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solireward import __version__
from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.evaluation import PASS_THRESHOLD, load_scores
from solireward.io import atomic_path, read_json, write_text

logger = logging.getLogger(__name__)

# tag -> (row header, table title)
FACTORS: dict[str, tuple[str, str]] = {
    "head": ("Head", "Accuracy per reward head (paper Table 5)"),
    "loss": ("Loss", "Accuracy per loss (paper Table 3)"),
    "pairing": ("Pairing", "Cross-prompt vs in-prompt pairing"),
    "labels": ("Labels", "Binary vs pairwise labels"),
}
# metric (section.key) -> column header; the table columns of every factor table
COLUMNS: dict[str, str] = {
    "pairs.accuracy": "Pair acc. (%)",
    "pairs.accuracy_with_ties": "Acc. w/ ties (%)",
    "video.roc_auc": "ROC-AUC (%)",
}
EXTRA_COLUMNS: dict[str, str] = {
    "video.best_f1": "Best F1 (%)",
    "pairs.evaluated": "Pairs",
    "counts.scored": "Videos",
    "counts.errored": "Errored",
}
PERCENT = set(COLUMNS) | {"video.best_f1"}
MAX_EMBEDDED_CONFIG = 64_000


@dataclasses.dataclass
class ReportConfig:
    """Options of `solireward report` (paper-style tables and figures from metrics files)."""

    metrics: list[str] = arg("metrics JSON files written by `solireward evaluate --tag ...`")
    output_dir: str = arg("folder for the tables (.md, .tex), figures (.png) and README.md")
    scores: list[str] | None = arg("score files (from `solireward infer`) for the histograms; matched to the "
                                   "metrics files by the score path they record, else by position", None)
    study_config: str | None = arg("the study configuration that produced the results; its path, hash and "
                                   "contents are recorded in README.md", None)
    title: str = arg("title of README.md", "SoliReward results")
    reference: list[str] | None = arg("reference value of a factor held fixed in the other tables, as "
                                      "KEY=VALUE (e.g. head=hpqa loss=btt); default: the most frequent value",
                                      None)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError("give at least one metrics file", field="metrics")


# ----------------------------------------------------------------------------------------------
# Reading


def _get(result: dict, dotted: str) -> Any:
    section, key = dotted.split(".")
    return (result.get(section) or {}).get(key)


def load_metrics(paths: list[str]) -> pd.DataFrame:
    """One row per metrics file: its tags (as columns), the table metrics and its source paths."""
    rows = []
    for path in paths:
        result = read_json(path)
        if not isinstance(result, dict) or not isinstance(result.get("tags"), dict) \
                or not isinstance(result.get("video"), dict):
            raise InputError("expected the JSON object written by `solireward evaluate` (with 'tags' and "
                             "'video')", file=path)
        row: dict[str, Any] = {f"tag:{k}": str(v) for k, v in result["tags"].items()}
        for dotted in (*COLUMNS, *EXTRA_COLUMNS):
            value = _get(result, dotted)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"expected a number or null, got {value!r}", file=path, field=dotted)
            row[dotted] = np.nan if value is None else float(value)
        row["source"] = str(path)
        row["scores_path"] = (result.get("sources") or {}).get("scores")
        row["score_field"] = result.get("score_field", "score")
        rows.append(row)
    return pd.DataFrame(rows)


def _tags(frame: pd.DataFrame) -> list[str]:
    names = [c[4:] for c in frame.columns if c.startswith("tag:")]
    return [f for f in FACTORS if f in names] + [n for n in names if n not in FACTORS]


def reference_values(frame: pd.DataFrame, overrides: list[str] | None) -> dict[str, str]:
    """Reference value of each factor: --reference, else the most frequent value (first seen on ties)."""
    given: dict[str, str] = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key not in FACTORS:
            raise ConfigError(f"expected FACTOR=VALUE with FACTOR one of {list(FACTORS)}, got {item!r}",
                              field="reference")
        given[key] = value
    refs = {}
    for factor in FACTORS:
        column = f"tag:{factor}"
        if column not in frame:
            if factor in given:
                raise ConfigError(f"no metrics file has the tag '{factor}'", field="reference")
            continue
        values = frame[column].dropna().tolist()
        if factor in given:
            if given[factor] not in values:
                raise ConfigError(f"{factor}={given[factor]} is in no metrics file; values: "
                                  f"{sorted(set(values))}", field="reference")
            refs[factor] = given[factor]
        elif values:
            counts = pd.Series(values).value_counts(sort=False)
            refs[factor] = max(dict.fromkeys(values), key=lambda v: counts[v])  # first seen wins ties
    return refs


# ----------------------------------------------------------------------------------------------
# Tables


def _escape_tex(text: str) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(table.get(ch, ch) for ch in str(text))


def _cell(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{100 * value:.2f}" if percent else f"{value:.0f}"


@dataclasses.dataclass
class Table:
    """A rendered table: header, body cells, which cells are bold, a caption and a label."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    bold: list[list[bool]]
    n_text_columns: int

    def markdown(self) -> str:
        align = ["---"] * self.n_text_columns + ["---:"] * (len(self.header) - self.n_text_columns)
        lines = [f"**{self.caption}**", "", "| " + " | ".join(self.header) + " |", "| " + " | ".join(align) + " |"]
        for row, bold in zip(self.rows, self.bold):
            cells = [(f"**{c}**" if b and c else (c or "–")) for c, b in zip(row, bold)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        spec = "l" * self.n_text_columns + "r" * (len(self.header) - self.n_text_columns)
        lines = ["% Generated by `solireward report`; do not edit by hand. Needs \\usepackage{booktabs}.",
                 "\\begin{table}[t]", "\\centering", f"\\caption{{{_escape_tex(self.caption)}}}",
                 f"\\label{{tab:{self.name.removeprefix('table_').replace('_', '-')}}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                 " & ".join(_escape_tex(h) for h in self.header) + " \\\\", "\\midrule"]
        for row, bold in zip(self.rows, self.bold):
            cells = [(f"\\textbf{{{_escape_tex(c)}}}" if b and c else (_escape_tex(c) if c else "--"))
                     for c, b in zip(row, bold)]
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"


def _render(name: str, caption: str, frame: pd.DataFrame, text_columns: list[tuple[str, str]],
            metric_columns: dict[str, str], group_by: list[str] | None) -> Table:
    """Format the rows; the best percentage per column within each `group_by` group is bold (None: no bold)."""
    header = [h for _, h in text_columns] + list(metric_columns.values())
    rows, bold = [], []
    best: dict[tuple, dict[str, float]] = {}
    keys = [tuple(r) for r in frame[group_by].itertuples(index=False)] if group_by else [()] * len(frame)
    for metric in metric_columns:
        if metric in PERCENT and group_by is not None:
            for key, value in zip(keys, frame[metric]):
                if not np.isnan(value):
                    best.setdefault(key, {})[metric] = max(best.get(key, {}).get(metric, -np.inf), value)
    for key, (_, record) in zip(keys, frame.iterrows()):
        cells = [str(record[c]) if pd.notna(record[c]) else "" for c, _ in text_columns]
        flags = [False] * len(text_columns)
        for metric in metric_columns:
            value = record[metric]
            cells.append(_cell(value, metric in PERCENT))
            flags.append(bool(not np.isnan(value) and value == best.get(key, {}).get(metric)))
        rows.append(cells)
        bold.append(flags)
    return Table(name, caption, header, rows, bold, len(text_columns))


def _matching(frame: pd.DataFrame, column: str, held: dict[str, str]) -> pd.Series:
    mask = frame[column].notna()
    for other, value in held.items():
        mask &= frame[f"tag:{other}"] == value
    return mask


def _held_values(frame: pd.DataFrame, factor: str, held: dict[str, str]) -> dict[str, str]:
    """Values of the other factors for `factor`'s table: the references when `factor` varies there;
    otherwise the combination under which it takes the most values, nearest the references.

    (A study's ablation may exist only off the reference: pairwise labels come as in-prompt pairs,
    so binary vs pairwise is compared with pairing = in_prompt.)
    """
    column = f"tag:{factor}"
    if not held or frame[_matching(frame, column, held)][column].nunique() >= 2:
        return held
    others = list(held)
    best: tuple[tuple[int, int], dict[str, str]] | None = None
    rows = frame[frame[column].notna()]
    for combo, group in rows.groupby([f"tag:{o}" for o in others], dropna=True, sort=False):
        combo = combo if isinstance(combo, tuple) else (combo,)
        key = (group[column].nunique(), sum(v == held[o] for o, v in zip(others, combo)))
        if key[0] >= 2 and (best is None or key > best[0]):
            best = (key, dict(zip(others, combo)))
    return best[1] if best else held


def factor_table(frame: pd.DataFrame, factor: str, refs: dict[str, str]) -> tuple[Table | None, str]:
    """The table of one factor (other factors at reference), or None and the reason it is skipped."""
    column = f"tag:{factor}"
    header, title = FACTORS[factor]
    if column not in frame:
        return None, f"no metrics file has the tag '{factor}'"
    values = frame[column].dropna().unique()
    if len(values) < 2:
        return None, f"the tag '{factor}' has only one value ({', '.join(map(str, values))})"
    held = _held_values(frame, factor, {f: v for f, v in refs.items() if f != factor})
    sub = frame[_matching(frame, column, held)]
    if sub[column].nunique() < 2:
        return None, (f"the tag '{factor}' has only one value when the other factors are held at "
                      f"{', '.join(f'{k}={v}' for k, v in held.items())}")
    leading = [t for t in _tags(frame) if t not in FACTORS and sub[f"tag:{t}"].nunique(dropna=False) > 1]
    text_columns = [(f"tag:{t}", t.capitalize()) for t in leading] + [(column, header)]
    order = {v: i for i, v in enumerate(dict.fromkeys(frame[column].dropna()))}
    sub = sub.assign(_order=sub[column].map(order)).sort_values([f"tag:{t}" for t in leading] + ["_order"],
                                                                 kind="stable")
    caption = title + ("; other factors: " + ", ".join(f"{k} = {v}" for k, v in held.items()) if held else "")
    return _render(f"table_{factor}", caption, sub, text_columns, COLUMNS, [f"tag:{t}" for t in leading]), ""


def all_results_table(frame: pd.DataFrame) -> Table:
    """Every metrics file: all tags and all metrics, in input order."""
    text_columns = [(f"tag:{t}", FACTORS[t][0] if t in FACTORS else t.capitalize()) for t in _tags(frame)]
    return _render("all_results", "All evaluated models (test split)", frame, text_columns,
                   {**COLUMNS, **EXTRA_COLUMNS}, None)


# ----------------------------------------------------------------------------------------------
# Figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


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
    plt, sns = _pyplot()
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
    with atomic_path(path) as tmp:
        grid.figure.savefig(tmp, dpi=100, format="png")
    plt.close(grid.figure)
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
    plt, sns = _pyplot()
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return None


# ----------------------------------------------------------------------------------------------
# The report


def _relative(path: str | os.PathLike, folder: Path) -> str:
    """`path` relative to `folder` (the report's), so a results folder moved as a whole keeps its README right."""
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()


def _config_section(config_file: str | None, folder: Path) -> list[str]:
    if not config_file:
        return ["No study configuration was given (`--study_config`).", ""]
    path = Path(config_file)
    if not path.is_file():
        raise InputError("config file does not exist", file=config_file, field="config")
    data = path.read_bytes()
    lines = [f"Produced by the study configuration `{_relative(path, folder)}` "
             f"(sha256 `{hashlib.sha256(data).hexdigest()}`).", ""]
    if len(data) <= MAX_EMBEDDED_CONFIG:
        fence = "yaml" if path.suffix in (".yaml", ".yml") else ""
        lines += [f"```{fence}", data.decode("utf-8", errors="replace").rstrip("\n"), "```", ""]
    return lines


def build_report(config: ReportConfig) -> list[str]:
    """Write the tables, figures and README.md into `config.output_dir`; returns the file names."""
    out = Path(config.output_dir)
    frame = load_metrics(config.metrics)
    refs = reference_values(frame, config.reference)
    files: dict[str, str] = {}
    notes: list[str] = []
    sections: list[str] = []

    for factor in FACTORS:
        table, reason = factor_table(frame, factor, refs)
        if table is None:
            notes.append(f"No table per {factor}: {reason}.")
            continue
        write_text(out / f"{table.name}.md", table.markdown())
        write_text(out / f"{table.name}.tex", table.latex())
        files[f"{table.name}.md"] = f"{table.caption} (Markdown)"
        files[f"{table.name}.tex"] = f"{table.caption} (LaTeX, booktabs)"
        sections += [f"### {FACTORS[factor][1]}", "", table.markdown(),
                     f"Files: [`{table.name}.md`]({table.name}.md), [`{table.name}.tex`]({table.name}.tex)", ""]
    everything = all_results_table(frame)
    write_text(out / "all_results.md", everything.markdown())
    write_text(out / "all_results.tex", everything.latex())
    relocatable = frame.drop(columns=["score_field"]).assign(  # paths relative to the report folder
        source=[_relative(p, out) for p in frame["source"]],
        scores_path=[_relative(p, out) if isinstance(p, str) else None for p in frame["scores_path"]])
    with atomic_path(out / "all_results.csv") as tmp:
        relocatable.rename(columns=lambda c: c[4:] if c.startswith("tag:") else c).to_csv(tmp, index=False)
    files.update({"all_results.md": "every metrics file: tags and metrics (Markdown)",
                  "all_results.tex": "the same (LaTeX, booktabs)",
                  "all_results.csv": "the same, unrounded (CSV; metrics as fractions)"})

    figures: list[str] = []
    reason = accuracy_heatmap(frame, refs, out / "heatmap_head_loss.png")
    if reason:
        notes.append(f"No head × loss heatmap: {reason}.")
    else:
        files["heatmap_head_loss.png"] = "pair accuracy (%) per head × loss (other factors at reference)"
        figures.append("heatmap_head_loss.png")
    if config.scores:
        reason = score_histograms(frame, config.scores, out / "score_histograms.png")
        if reason:
            notes.append(f"No score histograms: {reason}.")
        else:
            files["score_histograms.png"] = "score histograms of Pass vs Fail test videos, one panel per model"
            figures.append("score_histograms.png")
    else:
        notes.append("No score histograms: no score files were given (`--scores`).")
    files["README.md"] = "this file"

    readme = [f"# {config.title}", "",
              f"Generated by `solireward report` (solireward {__version__}) from {len(frame)} metrics "
              "file(s); every table and figure here is written by the program, none by hand.", "",
              "## Configuration", "", "Paths in this file are relative to its folder.", "",
              *_config_section(config.study_config, out),
              "## Reference values", "",
              "Each table varies one factor and holds the others at these values "
              f"({'given with --reference, else ' if config.reference else ''}the most frequent value): "
              + (", ".join(f"{k} = `{v}`" for k, v in refs.items()) or "none (no factor tags)") + ".", "",
              "## Tables", "", *sections, "### All results", "", everything.markdown(),
              "## Figures", ""]
    readme += [f"![{name}]({name})" + "\n" for name in figures] or ["None.", ""]
    if notes:
        readme += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    readme += ["## Source metrics files", "", "| # | file | tags |", "|---:|---|---|"]
    for i, (_, row) in enumerate(frame.iterrows(), start=1):
        tags = ", ".join(f"{t}={row[f'tag:{t}']}" for t in _tags(frame) if pd.notna(row[f"tag:{t}"]))
        readme.append(f"| {i} | `{_relative(row['source'], out)}` | {tags} |")
    if config.scores:
        readme += ["", "Score files: " + ", ".join(f"`{_relative(s, out)}`" for s in config.scores)]
    readme += ["", "## Files", "", "| file | content |", "|---|---|"]
    readme += [f"| [`{name}`]({name}) | {what} |" for name, what in files.items()]
    readme += ["", "## Metrics", "",
               "- Pair acc.: share of test win–lose pairs with r_win > r_lose (equal scores count ½).",
               "- Acc. w/ ties: best over ε ≥ 0 of the share of all test pairs (win–lose and win–tie) whose "
               "predicted relation (win if d > ε, tie if |d| ≤ ε, lose otherwise; d = r_win − r_lose) is right.",
               "- ROC-AUC: probability that a random Pass test video outscores a random Fail one (ties ½).",
               "- Best F1: largest F1 of Pass over score thresholds. All in percent; bold = best in the column.",
               ""]
    write_text(out / "README.md", "\n".join(readme))
    for note in notes:
        logger.info(note)
    return list(files)
