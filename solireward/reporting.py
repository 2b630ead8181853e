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

Replicates and uncertainty. Metrics files that differ only in the ``replicate`` tag are replicates
of one cell (trained with different seeds): a table row shows their mean, and the ``95 % CI`` column
the interval of pair accuracy: mean ± t(0.975, K−1)·s/√K over K replicates, or, for a single model,
the percentile bootstrap interval over test prompts that ``evaluate`` stored (``pairs.accuracy_ci``).
Each row is compared with the reference row of its table (the factor's reference value) on the
test pairs both were evaluated on (``per_pair`` of the metrics files, same pair file): ``Δ`` is the
difference of pair accuracy in points, ``p`` a two-sided paired bootstrap p-value
(``evaluation.paired_bootstrap``: test prompts resampled, and replicates when there are several),
and ``*`` marks p < 1 − ``--confidence``. Intervals and tests need the per-pair records, so
hand-made metrics files without them get neither.

Layout: ``README.md``; ``tables/`` (each table as .md, .tex and .html, and ``all_results.csv``);
``figures/`` (.png).

Figures (seaborn, Agg backend): ``score_histograms.png``, one panel per model with the score
distributions of its Pass and Fail videos, ``heatmap_head_loss.png``, pair accuracy per head ×
loss cell (other factors at reference), and ``learning_curves.png`` (``--training_logs``: the
``metrics.jsonl`` of each model, in the order of ``--metrics``): validation pair accuracy (the eval
rows) and training loss (a moving average over 2 % of the steps) against step, one colour per cell,
replicates as thin lines around their mean. Score files (``--scores``) are matched to metrics files by
the score path each metrics file records (``sources.scores``), otherwise by position (the n-th
score file belongs to the n-th metrics file; the counts must then be equal). A panel is titled by
the ``model`` tag when present, else by the tags that differ among the metrics files.
"""

from __future__ import annotations

import dataclasses
import base64
import hashlib
import html
import logging
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from solireward import __version__
from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.evaluation import PASS_THRESHOLD, load_scores, paired_bootstrap, pair_correct
from solireward.io import atomic_path, read_json, read_jsonl, relative_path, write_text

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
REPLICATE = "replicate"  # the tag that numbers the trainings of one cell (different seeds)
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
    training_logs: list[str] | None = arg("metrics.jsonl of each model's training, in the order of --metrics, "
                                          "for the learning curves", None)
    confidence: float = arg("level of the intervals over replicates; differences with p < 1 - confidence "
                            "are marked significant", 0.95)
    bootstrap_samples: int = arg("draws of the paired bootstrap against the reference row", 2000)
    seed: int = arg("random seed of the paired bootstrap", 0)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError("give at least one metrics file", field="metrics")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.confidence}", field="confidence")
        if self.bootstrap_samples < 1:
            raise ConfigError(f"must be >= 1, got {self.bootstrap_samples}", field="bootstrap_samples")
        if self.training_logs is not None and len(self.training_logs) != len(self.metrics):
            raise ConfigError(f"give one training log per metrics file ({len(self.metrics)}), got "
                              f"{len(self.training_logs)}", field="training_logs")


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
        interval = _get(result, "pairs.accuracy_ci")
        if interval is not None and not (isinstance(interval, list) and len(interval) == 2):
            raise InputError(f"expected [low, high], got {interval!r}", file=path, field="pairs.accuracy_ci")
        row["ci_low"], row["ci_high"] = interval if interval else (np.nan, np.nan)
        row["source"] = str(path)
        sources = result.get("sources") or {}
        row["scores_path"], row["pairs_path"] = (_recorded_path(sources.get(key), path) for key in ("scores", "pairs"))
        row["score_field"] = result.get("score_field", "score")
        row["per_pair"] = _per_pair(result.get("per_pair"), path)
        rows.append(row)
    return pd.DataFrame(rows)


def _recorded_path(recorded: Any, metrics_file: str) -> str | None:
    """A source path of a metrics file, absolute: `evaluate` records it relative to the file's folder."""
    if not isinstance(recorded, str):
        return None
    return str((Path(metrics_file).resolve().parent / recorded).resolve())


def _per_pair(records: Any, path: str) -> dict[str, np.ndarray] | None:
    """The per-pair records of a metrics file as arrays (None when absent)."""
    if records is None:
        return None
    keys = ("row", "prompt_win", "prompt_lose", "d", "relation")
    if not isinstance(records, dict) or any(not isinstance(records.get(k), list) for k in keys) \
            or len({len(records[k]) for k in keys}) != 1:
        raise InputError(f"expected lists {', '.join(keys)} of equal length", file=path, field="per_pair")
    return {"row": np.asarray(records["row"], dtype=np.int64), "d": np.asarray(records["d"], dtype=float),
            "relation": np.asarray(records["relation"], dtype=np.int64),
            "prompt_win": np.asarray(records["prompt_win"], dtype=object),
            "prompt_lose": np.asarray(records["prompt_lose"], dtype=object)}


def aggregate_replicates(frame: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """One row per cell: files differing only in the `replicate` tag are averaged.

    Adds ``replicates`` (K) and ``members`` (row numbers in `frame`); ``ci_low``/``ci_high`` become the
    t-interval of the mean pair accuracy when K > 1 and stay the file's bootstrap interval when K = 1.
    """
    if f"tag:{REPLICATE}" not in frame:
        return frame.assign(replicates=1, members=[[i] for i in range(len(frame))])
    keys = [c for c in frame.columns if c.startswith("tag:") and c != f"tag:{REPLICATE}"]
    rows = []
    for _, group in frame.groupby([frame[k].fillna("\0") for k in keys], sort=False) if keys else [((), frame)]:
        first = group.iloc[0]
        row = {k: first[k] for k in keys}
        for metric in (*COLUMNS, *EXTRA_COLUMNS):
            row[metric] = group[metric].mean()  # NaN when no file has it
        k = len(group)
        row.update(replicates=k, members=list(group.index), ci_low=first["ci_low"], ci_high=first["ci_high"],
                   source=first["source"], scores_path=first["scores_path"], pairs_path=first["pairs_path"],
                   score_field=first["score_field"], per_pair=first["per_pair"])
        values = group["pairs.accuracy"].dropna().to_numpy()
        if k > 1:
            row["ci_low"] = row["ci_high"] = np.nan
            if len(values) > 1:
                half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                row["ci_low"], row["ci_high"] = values.mean() - half, values.mean() + half
        rows.append(row)
    return pd.DataFrame(rows)


def _tags(frame: pd.DataFrame) -> list[str]:
    names = [c[4:] for c in frame.columns if c.startswith("tag:")]
    return [f for f in FACTORS if f in names] + [n for n in names if n not in FACTORS and n != REPLICATE] \
        + [n for n in names if n == REPLICATE]


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
    note: str = ""

    def markdown(self) -> str:
        align = ["---"] * self.n_text_columns + ["---:"] * (len(self.header) - self.n_text_columns)
        lines = [f"**{self.caption}**", "", "| " + " | ".join(self.header) + " |", "| " + " | ".join(align) + " |"]
        for row, bold in zip(self.rows, self.bold):
            cells = [(f"**{c}**" if b and c else (c or "–")) for c, b in zip(row, bold)]
            lines.append("| " + " | ".join(cells) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """A standalone HTML page of the table (what the Snakemake report shows)."""
        return _html_page(self.name, self.html_fragment())

    def html_fragment(self) -> str:
        """The table (caption, header, rows) and its note as HTML elements."""
        def cell(tag: str, text: str, right: bool, bold: bool = False) -> str:
            text = html.escape(text or "–")
            attribute = ' class="r"' if right else ""
            return f"<{tag}{attribute}>{f'<b>{text}</b>' if bold else text}</{tag}>"

        right = [i >= self.n_text_columns for i in range(len(self.header))]
        head = "".join(cell("th", h, r) for h, r in zip(self.header, right))
        body = "".join("<tr>" + "".join(cell("td", c, r, b) for c, r, b in zip(row, right, bold)) + "</tr>\n"
                       for row, bold in zip(self.rows, self.bold))
        note = f"<p class=\"note\">{html.escape(self.note)}</p>" if self.note else ""
        return (f"<table><caption>{html.escape(self.caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
                f"<tbody>\n{body}</tbody></table>\n{note}\n")

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
        lines += ["\\bottomrule", "\\end{tabular}"]
        if self.note:
            lines.append(f"\\par\\smallskip{{\\footnotesize {_escape_tex(self.note)}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"


def _html_page(title: str, body: str) -> str:
    """A self-contained HTML page with the report's table style."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;margin:1em;max-width:75em}table{border-collapse:collapse;"
            "margin-top:1.2em}th,td{padding:3px 10px;border-bottom:1px solid #ccc}th{border-bottom:2px solid #444}"
            ".r{text-align:right}caption{font-weight:bold;text-align:left;padding-bottom:6px}"
            ".note{font-size:90%;color:#444;max-width:60em}img{max-width:100%;margin:1em 0}</style></head><body>\n"
            f"{body}</body></html>\n")


def _render(name: str, caption: str, frame: pd.DataFrame, text_columns: list[tuple[str, str]],
            metric_columns: dict[str, str], group_by: list[str] | None) -> Table:
    """Format the rows; the best percentage per column within each `group_by` group is bold (None: no bold).

    A metric column whose key starts with ``_`` holds ready-made text (right-aligned, never bold).
    """
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
            if metric.startswith("_"):
                cells.append(value if isinstance(value, str) else "")
                flags.append(False)
                continue
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


@dataclasses.dataclass
class Uncertainty:
    """How the tables show uncertainty: the metrics files (for the per-pair records) and the test settings."""

    files: pd.DataFrame        # load_metrics of every file (the rows that `members` point at)
    confidence: float = 0.95
    samples: int = 2000
    seed: int = 0


def _percent(fraction: float) -> str:
    """0.95 -> '95 %' (the house style of the tables)."""
    return f"{100 * fraction:.3g} %"


def compare_to_reference(files: pd.DataFrame, members: list[int], reference: list[int], samples: int,
                         confidence: float, seed: int) -> dict[str, Any] | None:
    """Paired bootstrap of a cell's replicates against the reference cell's on their common win–lose pairs.

    None when a side lacks per-pair records, the two were evaluated on different pair files, or they
    share no win–lose pair.
    """
    records = [files["per_pair"].iloc[i] for i in [*members, *reference]]
    sources = {files["pairs_path"].iloc[i] for i in [*members, *reference]}
    if any(r is None for r in records) or len(sources) != 1:
        return None
    correct = []
    for r in records:
        keep = r["relation"] != 0
        correct.append(dict(zip(r["row"][keep].tolist(), pair_correct(r["d"][keep], r["relation"][keep]))))
    common = sorted(set.intersection(*(set(c) for c in correct)))
    if not common:
        return None
    first = records[0]
    position = {row: i for i, row in enumerate(first["row"].tolist())}
    index = np.array([position[row] for row in common])
    matrix = np.array([[c[row] for row in common] for c in correct])
    result = paired_bootstrap(matrix[:len(members)], matrix[len(members):], first["prompt_win"][index],
                              first["prompt_lose"][index], samples, confidence, seed)
    return {**result, "pairs": len(common)}


def _interval_cells(frame: pd.DataFrame) -> list[str]:
    """Each row's pair-accuracy interval in percent, '[lo, hi]', or '' without one."""
    return [f"[{100 * lo:.1f}, {100 * hi:.1f}]" if pd.notna(lo) else ""
            for lo, hi in zip(frame["ci_low"], frame["ci_high"])]


def _uncertainty_columns(sub: pd.DataFrame, column: str, reference: str | None, leading: list[str],
                         unc: Uncertainty) -> tuple[pd.DataFrame, dict[str, str], str]:
    """Interval, Δ-vs-reference, p and replicate-count text columns of a factor table, and their note."""
    alpha = 1 - unc.confidence
    sub = sub.copy()
    sub["_ci"] = _interval_cells(sub)
    sub["_delta"], sub["_p"] = "", ""
    tested = 0
    groups = sub.groupby([f"tag:{t}" for t in leading], sort=False) if leading else [((), sub)]
    for _, group in groups:
        ref_rows = group.index[group[column] == reference]
        if reference is None or len(ref_rows) != 1:
            continue
        ref_members = group.loc[ref_rows[0], "members"]
        for i in group.index:
            if i == ref_rows[0]:
                continue
            test = compare_to_reference(unc.files, group.loc[i, "members"], ref_members, unc.samples,
                                        unc.confidence, unc.seed)
            if test is None or test["p_value"] is None:
                continue
            tested += 1
            mark = "*" if test["p_value"] < alpha else ""
            sub.loc[i, "_delta"] = f"{100 * test['difference']:+.2f}{mark}"
            sub.loc[i, "_p"] = "<0.001" if test["p_value"] < 0.001 else f"{test['p_value']:.3f}"
        if tested:
            sub.loc[ref_rows[0], "_delta"] = "ref."
    columns: dict[str, str] = {"pairs.accuracy": COLUMNS["pairs.accuracy"]}
    notes = []
    replicated = bool((sub["replicates"] > 1).any())
    if (sub["_ci"] != "").any():
        how = []
        if replicated:
            how.append("mean ± t·s/√K over the K replicates (column Models; seed-to-seed spread on this test set, "
                       "the test-set sampling is in p)")
        if ((sub["replicates"] == 1) & (sub["_ci"] != "")).any():
            how.append("a bootstrap over test prompts for a single model")
        columns["_ci"] = f"{_percent(unc.confidence)} CI"
        notes.append(f"{_percent(unc.confidence)} CI of pair accuracy: " + "; ".join(how) + ".")
    if tested:
        columns.update({"_delta": "Δ vs ref. (pp)", "_p": "p"})
        notes.append(f"Δ: pair accuracy minus the reference row's ({column[4:]} = {reference}) on the same test "
                     f"pairs, in points; p: two-sided paired bootstrap over test prompts"
                     f"{' and replicates' if replicated else ''} ({unc.samples} draws); "
                     f"* = significant at the {_percent(alpha)} level.")
    columns.update({k: v for k, v in COLUMNS.items() if k != "pairs.accuracy"})
    if replicated:
        sub["_n"] = sub["replicates"].astype(str)
        columns["_n"] = "Models"
        notes.append("Metrics are means over the replicates (same cell, different seeds).")
    return sub, columns, " ".join(notes)


def factor_table(frame: pd.DataFrame, factor: str, refs: dict[str, str],
                 uncertainty: Uncertainty | None = None) -> tuple[Table | None, str]:
    """The table of one factor (other factors at reference), or None and the reason it is skipped.

    `frame` holds one row per cell (``aggregate_replicates``); with `uncertainty`, intervals and paired
    tests against the reference row are added.
    """
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
    columns, note = COLUMNS, ""
    if uncertainty is not None:
        sub, columns, note = _uncertainty_columns(sub, column, refs.get(factor), leading, uncertainty)
    table = _render(f"table_{factor}", caption, sub, text_columns, columns, [f"tag:{t}" for t in leading])
    table.note = note
    return table, ""


def all_results_table(frame: pd.DataFrame) -> Table:
    """Every metrics file: all tags and all metrics, in input order."""
    text_columns = [(f"tag:{t}", FACTORS[t][0] if t in FACTORS else t.capitalize()) for t in _tags(frame)]
    columns = {**COLUMNS, **EXTRA_COLUMNS}
    note = ""
    if "ci_low" in frame and frame["ci_low"].notna().any():
        frame = frame.assign(_ci=_interval_cells(frame))
        columns = {"pairs.accuracy": COLUMNS["pairs.accuracy"], "_ci": "95 % CI (prompts)",
                   **{k: v for k, v in columns.items() if k != "pairs.accuracy"}}
        note = "95 % CI (prompts): the bootstrap interval of each model's pair accuracy over test prompts."
    table = _render("all_results", "All evaluated models (test split)", frame, text_columns, columns, None)
    table.note = note
    return table


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
    plt, sns = _pyplot()
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return None


# ----------------------------------------------------------------------------------------------
# The report


def _config_section(config_file: str | None, folder: Path) -> list[str]:
    if not config_file:
        return ["No study configuration was given (`--study_config`).", ""]
    path = Path(config_file)
    if not path.is_file():
        raise InputError("config file does not exist", file=config_file, field="config")
    data = path.read_bytes()
    lines = [f"Produced by the study configuration `{relative_path(path, folder)}` "
             f"(sha256 `{hashlib.sha256(data).hexdigest()}`).", ""]
    if len(data) <= MAX_EMBEDDED_CONFIG:
        fence = "yaml" if path.suffix in (".yaml", ".yml") else ""
        lines += [f"```{fence}", data.decode("utf-8", errors="replace").rstrip("\n"), "```", ""]
    return lines


def _summary_html(title: str, uncertainty: str, tables: list[Table], figures: list[str], notes: list[str],
                  out: Path) -> str:
    """One self-contained page: the uncertainty note, every table, every figure (embedded) and the notes."""
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p class=\"note\">{html.escape(uncertainty.replace('`', ''))}</p>",
             "<p class=\"note\">Details, the study configuration and the file list: README.md in the same "
             "folder.</p>", "<h2>Tables</h2>"]
    parts += [t.html_fragment() for t in tables]
    parts.append("<h2>Figures</h2>")
    for name in figures:
        data = base64.b64encode((out / name).read_bytes()).decode("ascii")
        parts.append(f"<h3>{html.escape(Path(name).stem.replace('_', ' '))}</h3>"
                     f"<img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return _html_page(title, "\n".join(parts) + "\n")


def _first_replicates(frame: pd.DataFrame, cells: pd.DataFrame, scores: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The metrics rows and score files of each cell's first replicate (all of them without replicates or
    when score files cannot be matched by their recorded paths)."""
    if f"tag:{REPLICATE}" not in frame or frame["scores_path"].isna().any():
        return frame, scores
    shown = frame.iloc[[m[0] for m in cells["members"]]].drop(columns=[f"tag:{REPLICATE}"]).reset_index(drop=True)
    wanted = {str(Path(p).resolve()) for p in shown["scores_path"]}
    return shown, [s for s in scores if str(Path(s).resolve()) in wanted]


def build_report(config: ReportConfig) -> list[str]:
    """Write the tables, figures and README.md into `config.output_dir`; returns the file names (relative)."""
    out = Path(config.output_dir)
    tables_dir, figures_dir = out / "tables", out / "figures"
    frame = load_metrics(config.metrics)
    cells = aggregate_replicates(frame, config.confidence)
    refs = reference_values(frame, config.reference)
    uncertainty = Uncertainty(frame, config.confidence, config.bootstrap_samples, config.seed)
    files: dict[str, str] = {}
    notes: list[str] = []
    sections: list[str] = []
    tables: list[Table] = []

    def write_table(table: Table, what: str) -> None:
        tables.append(table)
        for suffix, kind in (("md", "Markdown"), ("tex", "LaTeX, booktabs"), ("html", "HTML")):
            text = {"md": table.markdown, "tex": table.latex, "html": table.html}[suffix]()
            write_text(tables_dir / f"{table.name}.{suffix}", text)
            files[f"tables/{table.name}.{suffix}"] = f"{what} ({kind})"

    for factor in FACTORS:
        table, reason = factor_table(cells, factor, refs, uncertainty)
        if table is None:
            notes.append(f"No table per {factor}: {reason}.")
            continue
        write_table(table, table.caption)
        sections += [f"### {FACTORS[factor][1]}", "", table.markdown(),
                     f"Files: [`{table.name}.md`](tables/{table.name}.md), "
                     f"[`{table.name}.tex`](tables/{table.name}.tex), [`{table.name}.html`](tables/{table.name}.html)",
                     ""]
    everything = all_results_table(frame)
    write_table(everything, "every metrics file: tags and metrics")
    relocatable = frame.drop(columns=["score_field", "per_pair"]).assign(  # paths relative to the CSV's folder
        source=[relative_path(p, tables_dir) for p in frame["source"]],
        scores_path=[relative_path(p, tables_dir) if isinstance(p, str) else None for p in frame["scores_path"]],
        pairs_path=[relative_path(p, tables_dir) if isinstance(p, str) else None for p in frame["pairs_path"]])
    with atomic_path(tables_dir / "all_results.csv") as tmp:
        relocatable.rename(columns=lambda c: c[4:] if c.startswith("tag:") else c).to_csv(tmp, index=False)
    files["tables/all_results.csv"] = "the same, unrounded (CSV; metrics and intervals as fractions)"

    figures: list[str] = []

    def figure(name: str, reason: str | None, what: str, missing: str) -> None:
        if reason:
            notes.append(f"No {missing}: {reason}.")
        else:
            files[f"figures/{name}"] = what
            figures.append(f"figures/{name}")

    if config.training_logs:
        figure("learning_curves.png", learning_curves(frame, config.training_logs, figures_dir / "learning_curves.png"),
               "validation pair accuracy and training loss vs step per model (replicates as thin lines)",
               "learning curves")
    else:
        notes.append("No learning curves: no training logs were given (`--training_logs`).")
    figure("heatmap_head_loss.png", accuracy_heatmap(cells, refs, figures_dir / "heatmap_head_loss.png"),
           "pair accuracy (%) per head × loss (other factors at reference)", "head × loss heatmap")
    if config.scores:
        shown, scores = _first_replicates(frame, cells, config.scores)
        figure("score_histograms.png", score_histograms(shown, scores, figures_dir / "score_histograms.png"),
               "score histograms of Pass vs Fail test videos, one panel per model", "score histograms")
    else:
        notes.append("No score histograms: no score files were given (`--scores`).")
    files["README.md"] = "this file"
    files["summary.html"] = "the tables and figures on one self-contained HTML page"

    replicated = int(cells["replicates"].max())
    uncertainty_text = (
        (f"{len(cells)} cell(s), up to {replicated} replicate(s) each (same cell, different seeds). "
         if replicated > 1 else f"{len(cells)} cell(s), one model each. ")
        + "Intervals: " + ("mean ± t·s/√K over a cell's replicates (the spread from seeds), and " if replicated > 1
                           else "")
        + "a percentile bootstrap over test prompts for a single model (`evaluate`; pairs of one prompt "
        "are not independent, so prompts are resampled, not pairs). Δ and p compare each row with its "
        "table's reference row on the same test pairs (paired bootstrap over prompts"
        + (" and replicates" if replicated > 1 else "") + f", {config.bootstrap_samples} draws); "
        f"* marks p < {1 - config.confidence:.2g}. A difference without * is not distinguishable from "
        "noise at this test-set size.")
    readme = [f"# {config.title}", "",
              f"Generated by `solireward report` (solireward {__version__}) from {len(frame)} metrics "
              "file(s); every table and figure here is written by the program, none by hand.", "",
              "## Configuration", "", "Paths in this file are relative to its folder.", "",
              *_config_section(config.study_config, out),
              "## Reference values", "",
              "Each table varies one factor and holds the others at these values "
              f"({'given with --reference, else ' if config.reference else ''}the most frequent value): "
              + (", ".join(f"{k} = `{v}`" for k, v in refs.items()) or "none (no factor tags)") + ".", "",
              "## Uncertainty", "", uncertainty_text, "",
              "## Tables", "", *sections, "### All results", "", everything.markdown(),
              "## Figures", ""]
    readme += [f"![{Path(name).name}]({name})" + "\n" for name in figures] or ["None.", ""]
    if notes:
        readme += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    readme += ["## Source metrics files", "", "| # | file | tags |", "|---:|---|---|"]
    for i, (_, row) in enumerate(frame.iterrows(), start=1):
        tags = ", ".join(f"{t}={row[f'tag:{t}']}" for t in _tags(frame) if pd.notna(row[f"tag:{t}"]))
        readme.append(f"| {i} | `{relative_path(row['source'], out)}` | {tags} |")
    if config.scores:
        readme += ["", "Score files: " + ", ".join(f"`{relative_path(s, out)}`" for s in config.scores)]
    if config.training_logs:
        readme += ["", "Training logs: " + ", ".join(f"`{relative_path(s, out)}`" for s in config.training_logs)]
    readme += ["", "## Files", "", "| file | content |", "|---|---|"]
    readme += [f"| [`{name}`]({name}) | {what} |" for name, what in files.items()]
    readme += ["", "## Metrics", "",
               "- Pair acc.: share of test win–lose pairs with r_win > r_lose (equal scores count ½).",
               "- Acc. w/ ties: best over ε ≥ 0 of the share of all test pairs (win–lose and win–tie) whose "
               "predicted relation (win if d > ε, tie if |d| ≤ ε, lose otherwise; d = r_win − r_lose) is right; "
               "comparable with other work only at a stated ε (each model's ε is in its metrics file).",
               "- ROC-AUC: probability that a random Pass test video outscores a random Fail one (ties ½).",
               "- Best F1: largest F1 of Pass over score thresholds. All in percent; bold = best in the column.",
               ""]
    write_text(out / "README.md", "\n".join(readme))
    write_text(out / "summary.html", _summary_html(config.title, uncertainty_text, tables, figures, notes, out))
    for note in notes:
        logger.info(note)
    return list(files)
