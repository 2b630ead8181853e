"""The label import's agreement report: per dimension and per annotator (``label_report.json`` / ``.md``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from solireward.data.agreement import krippendorff_alpha_nominal, pairwise_agreement
from solireward.io import markdown_cell
from solireward.table import markdown_table


def _rate(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _annotator_stats(codes: np.ndarray, names: np.ndarray, labels: np.ndarray,
                     majority: np.ndarray) -> dict[str, dict]:
    """n labels, pass rate and agreement with the (non-null) majority label, per annotator present."""
    k = len(names)
    n = np.bincount(codes, minlength=k)
    n_pass = np.bincount(codes, weights=labels, minlength=k)
    compared = majority >= 0
    n_compared = np.bincount(codes[compared], minlength=k)
    n_agree = np.bincount(codes[compared], weights=labels[compared] == majority[compared], minlength=k)
    return {str(names[i]): {"n_labels": int(n[i]), "pass_rate": _rate(n_pass[i], n[i]),
                            "agreement_with_majority": _rate(n_agree[i], n_compared[i]),
                            "n_compared": int(n_compared[i])}
            for i in np.argsort(names, kind="stable") if n[i]}


def label_report(table: pd.DataFrame, rows: pd.DataFrame, names: dict[str, np.ndarray],
                 unit_of_row: np.ndarray) -> dict[str, Any]:
    """Agreement statistics per dimension and per annotator (fields explained in label_report.md).

    `table` is the label table, `rows` the clean annotation rows (codes of `names`' dimension and annotator
    names) and `unit_of_row` each row's index in `table`."""
    majority = table["label"].fillna(-1).to_numpy(dtype=np.int64)[unit_of_row]
    labels = rows["label"].to_numpy(dtype=np.int64)
    annotators, annotator_names = rows["annotator"].to_numpy(), names["annotator"]
    row_dimension = rows["dimension"].to_numpy()
    table_dimension = table["dimension"].to_numpy()
    table_label = table["label"].to_numpy(dtype=float, na_value=np.nan)
    status = table["status"].to_numpy()
    per_dimension, by_dimension = {}, {}
    present = np.unique(row_dimension)
    for code in present[np.argsort(names["dimension"][present], kind="stable")]:
        dimension = str(names["dimension"][code])
        units = table_dimension == dimension
        counts = np.stack([table["n_fail"].to_numpy()[units], table["n_pass"].to_numpy()[units]], axis=1)
        rows = row_dimension == code
        labelled = table_label[units][~np.isnan(table_label[units])]
        per_dimension[dimension] = {
            "videos": int(units.sum()),
            "ratings": int(counts.sum()),
            "annotators": int(np.unique(annotators[rows]).size),
            "mean_annotators_per_video": float(counts.sum() / units.sum()),
            "krippendorff_alpha": _finite(krippendorff_alpha_nominal(counts)),
            "pairwise_agreement": _finite(pairwise_agreement(counts)),
            "pass_rate": _rate(labelled.sum(), len(labelled)),
            "rating_pass_rate": _rate(counts[:, 1].sum(), counts.sum()),
            "ok": int((status[units] == "ok").sum()),
            "split": int((status[units] == "split").sum()),
            "low_agreement": int((status[units] == "low_agreement").sum()),
        }
        by_dimension[dimension] = _annotator_stats(annotators[rows], annotator_names, labels[rows], majority[rows])
    return {"dimensions": per_dimension,
            "annotators": _annotator_stats(annotators, annotator_names, labels, majority),
            "annotators_by_dimension": by_dimension}


def _fmt(value: Any) -> str:
    return markdown_cell(value, digits=3, missing="n/a")


def report_markdown(report: dict[str, Any]) -> str:
    """The label report as Markdown tables."""
    s = report["summary"]
    lines = ["# Label import report", "",
             f"- Files: {', '.join(s['files'])}",
             f"- Rows read: {s['rows_read']}; rejected: {s['rows_rejected']}; exact duplicates removed: "
             f"{s['duplicates_removed']}",
             f"- Videos: {s['videos']}; dimensions: {', '.join(s['dimensions'])}; "
             f"minimum agreement: {s['min_agreement']}", ""]
    if s["rejected_by_kind"]:
        lines += ["Rejected rows by kind: " + ", ".join(f"{k} {v}" for k, v in s["rejected_by_kind"].items()), ""]
    lines += ["## Per dimension", "",
              "Krippendorff's alpha is nominal (coincidence matrix; videos with one rating are not pairable). "
              "Pairwise agreement is the share of agreeing pairs among all pairs of ratings of one video. "
              "Pass rate is over videos with a label.", "",
              markdown_table(["dimension", "videos", "ratings", "alpha", "pairwise agreement", "pass rate", "ok",
                              "split", "low agreement"],
                             [[name, d["videos"], d["ratings"], _fmt(d["krippendorff_alpha"]),
                               _fmt(d["pairwise_agreement"]), _fmt(d["pass_rate"]), d["ok"], d["split"],
                               d["low_agreement"]] for name, d in report["dimensions"].items()])]
    lines += ["", "## Per annotator (all dimensions)", "",
              "Agreement with the majority counts only videos with a label; the majority includes the "
              "annotator's own vote.", "",
              markdown_table(["annotator", "labels", "pass rate", "agreement with majority"],
                             [[name, a["n_labels"], _fmt(a["pass_rate"]), _fmt(a["agreement_with_majority"])]
                              for name, a in report["annotators"].items()])]
    return "\n".join(lines) + "\n"
