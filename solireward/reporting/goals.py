"""The mitigation goals of a study (``report.mitigation_goals``), each judged three-valued on its interval.

A goal is *met* when its whole interval is inside the limit, *missed* when the whole interval is outside, and
*unresolved* otherwise; an unresolved verdict says at about how many times the data its interval would end at the
limit (the factor by which test data and seeds must grow for the interval's half-width, shrinking as 1/√data, to
equal the distance from the measured value to the limit), names the largest part of its variance (the units: test
pairs, videos or prompts; the cell's seeds; or, for an accuracy goal, its base's seeds), the data that would narrow
it most, and how much more of that data alone would do the same. That is a projection, not a promise: where it ends
the interval the goal is a toss-up (how often such data resolves it, by simulation: docs/UNCERTAINTY.md,
"Verdicts"). Every measure is over all trainings of the cell (its seeds) and its units: a probe shift (over videos)
or a pick-share departure (over prompts) as the mean of each training's own |mean|, so that seeds leaning opposite
ways do not cancel (``hacking.intervals.mean_magnitude``); hacking gaps over prompts
(``hacking.intervals.replicated_comparison``), accuracy differences over test pairs (``evaluation.paired_test``),
Spearman's ρ on Fisher's z scale.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from solireward.goal_grammar import ACCURACY_GOALS, GOAL_KINDS
from solireward.hacking.intervals import mean_magnitude, replicated_comparison
from solireward.hacking.overopt import common_kl, overopt_matrix
from solireward.hacking.probe import probe_matrix
from solireward.reporting.mitigation import by_cell, cell_key, mitigated_cells
from solireward.reporting.stats import compare_to_reference
from solireward.study import NO_MITIGATION
from solireward.table import Table, interval_cell, number_cell

GOAL_HEADER = ["Cell", "Goal", "Models", "Measured", "95 % CI", "Verdict", "Reference", "Twin", "Per seed"]
Interval = tuple[float | None, float | None, float | None]   # (value, low, high)

UNITS = {"probe": "videos", "gap": "prompts", "share": "prompts"}
"""What a goal's units are, by kind, as its verdict names them (an accuracy goal's: test pairs)."""

MAX_DATA_FACTOR = 100.0
"""Past this many times the data, an unresolved verdict names no factor: the estimate sits on the limit."""


def verdict(value: float | None, low: float | None, high: float | None, limit: float, at_most: bool,
            parts: Mapping[str, float] | None = None) -> str:
    """'met', 'missed by X' or 'unresolved (…)' by where the interval [low, high] lies against the limit; an
    unresolved one says at how many times the data the interval would end at the limit, names the largest of
    `parts` (the shares of the variance, by what data they come from) and how much more of that data alone would
    do the same, or that no one kind of data alone would."""
    if value is None or not np.isfinite(value):
        return "not measured"
    if low is None or high is None:
        return "unresolved (no interval)"
    if (high <= limit) if at_most else (low >= limit):
        return "met"
    if (low > limit) if at_most else (high < limit):
        return f"missed by {abs(value - limit):.2f}"
    distance = abs(value - limit)
    if distance == 0:
        return "unresolved (at the limit)"
    half = (high - value) if (value <= limit) == at_most else (value - low)
    factor = (half / distance) ** 2
    if factor > MAX_DATA_FACTOR:
        return f"unresolved (too close to the limit: over {MAX_DATA_FACTOR:.0f}× the data{_largest(parts, None)})"
    return f"unresolved (at ≈{factor:.1f}× the data its interval would end at the limit" \
           f"{_largest(parts, 1 / factor)})"


def _largest(parts: Mapping[str, float] | None, needed: float | None) -> str:
    """"; most of its variance: NAME, S %" and, when `needed` (the share of the variance the interval may keep) is
    given, how many times NAME's data alone would leave no more than that: S / (needed − (1 − S)); "" without
    parts. The largest part is the one kind of data that can narrow the interval most on its own."""
    if not parts:
        return ""
    name, share = max(parts.items(), key=lambda item: item[1])
    text = f"; most of its variance: {name}, {100 * share:.0f} %"
    if needed is None:
        return text
    if needed <= 1 - share:
        return f"{text}, and no one kind of data alone would get it there"
    return f"{text}, ≈{share / (needed - (1 - share)):.1f}× those alone would"


Shares = dict[str, float] | None   # the parts of a measure's variance (``variance_shares``), None without them
Measure = tuple[Interval, list[float] | None, Shares]   # a goal's measure, each training's own (None: not per seed)


def magnitude(values: np.ndarray, confidence: float) -> Measure:
    """The mean over trainings of |mean over units| of ``(trainings, units)`` values, its interval
    (``hacking.intervals.mean_magnitude``), each training's, and the parts of its variance."""
    found = mean_magnitude(values, confidence)
    return (found["mean"], found["low"], found["high"]), found["per_replicate"], found["variance_shares"]


def spearman_interval(rhos: Sequence[float], videos: int, confidence: float) -> Interval:
    """Mean Spearman ρ of K trainings with an interval on Fisher's z scale: each ρ's sampling variance
    1.06/(n − 3) (Fieller, Hartley & Pearson 1957) over K, plus the seeds' variance of z over K."""
    z = np.arctanh(np.clip(np.asarray(rhos, dtype=float), -0.999999, 0.999999))
    mean = float(np.tanh(z.mean()))
    if videos <= 3:
        return mean, None, None
    variance = 1.06 / (videos - 3) / len(z) + (float(z.var(ddof=1)) / len(z) if len(z) > 1 else 0.0)
    q = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(variance)
    return mean, float(np.tanh(z.mean() - q)), float(np.tanh(z.mean() + q))


def _probe_goal(kind: str, name: str, probes: list[dict[str, Any]], confidence: float) -> Measure:
    """A probe goal's |score shift| (over trainings and the videos every one tested) or Spearman's ρ."""
    matrix = probe_matrix(probes, name)
    tested = None if matrix is None else np.isfinite(matrix).all(axis=0)
    if tested is None or not tested.any():
        return (None, None, None), None, None
    if kind == "probe":
        return magnitude(matrix[:, tested], confidence)
    rhos = [next(p for p in r["perturbations"] if p["name"] == name).get("spearman") for r in probes]
    if any(rho is None for rho in rhos):
        return (None, None, None), None, None
    return spearman_interval(rhos, int(tested.sum()), confidence), rhos, None


def share_goal(axis: str, overopts: list[dict[str, Any]], confidence: float) -> tuple[Measure, str]:
    """|departure| of best-of-n's picks (at the largest n) from the base share at the value of nuisance `axis`
    (e.g. ``scale``) whose departure is largest, over the cell's trainings and the grid's prompts, and that
    value; a measure of None when the grid has no such axis or the trainings' grids differ."""
    from solireward.hacking.nuisance import groups

    if len({(tuple(r["prompts"]), str(r["settings"])) for r in overopts}) != 1:
        return ((None, None, None), None, None), axis
    masks = {label: mask for label, mask in groups(overopts[0]["settings"]).items() if label.split("=")[0] == axis}
    points = [max(r["curves"].get("best_of_n", []), key=lambda p: p["n"], default=None) for r in overopts]
    if not masks or any(p is None or p["n"] != points[0]["n"] for p in points):
        return ((None, None, None), None, None), axis
    found = {label: _departure(points, label, mask, confidence) for label, mask in masks.items()}
    label = max(found, key=lambda k: found[k][0][0])
    return found[label], f"{label} @ best-of-{points[0]['n']}"


def share_at(where: str, overopts: list[dict[str, Any]], confidence: float) -> Measure:
    """|departure| of best-of-n's picks from the base share at one nuisance value and n, `where` as
    :func:`share_goal` names it (``axis=value @ best-of-n``), over the trainings `overopts` and the grid's prompts;
    a measure of None when they lack that value or n, or their grids differ."""
    from solireward.hacking.nuisance import groups

    label, _, n = where.partition(" @ best-of-")
    if not n or len({(tuple(r["prompts"]), str(r["settings"])) for r in overopts}) != 1:
        return (None, None, None), None, None
    mask = groups(overopts[0]["settings"]).get(label)
    points = [next((p for p in r["curves"].get("best_of_n", []) if str(p["n"]) == n), None) for r in overopts]
    if mask is None or any(p is None for p in points):
        return (None, None, None), None, None
    return _departure(points, label, mask, confidence)


def _departure(points: list[dict[str, Any]], label: str, mask: np.ndarray, confidence: float) -> Measure:
    """|share − base share| at nuisance value `label` over the trainings' best-of-n `points` and the prompts."""
    return magnitude(np.array([np.asarray(p["per_prompt"]["share"][label]) - mask.mean(1) for p in points]),
                     confidence)


def _per_seed_accuracy(files: pd.DataFrame, row: pd.Series, base: pd.Series) -> list[float] | None:
    """Points of pair accuracy by which each training is below `base`'s training of the same replicate (seed), or
    below the mean of `base`'s trainings where it has more seeds (``reference_replicates``)."""
    if len(row["members"]) > len(base["members"]):
        return None
    accuracy = files["pairs.accuracy"].astype(float)
    if len(row["members"]) < len(base["members"]):
        mean = float(accuracy.loc[base["members"]].mean())
        return [100 * (mean - accuracy.loc[m]) for m in row["members"]]
    return [100 * (accuracy.loc[b] - accuracy.loc[m]) for m, b in zip(row["members"], base["members"])]


def _accuracy_below(files: pd.DataFrame, row: pd.Series, base: pd.Series | None, confidence: float,
                    pooled_seeds: tuple[float, float] | None) -> Measure:
    """Points of pair accuracy by which the mitigated cell is below `base`, with the paired test's interval, each
    training's (:func:`_per_seed_accuracy`), and the shares of its variance (``evaluation.paired_test``'s
    ``variance_shares``; None without an interval)."""
    if base is None:
        return (None, None, None), None, None
    per_seed = _per_seed_accuracy(files, row, base)
    test = compare_to_reference(files, row["members"], base["members"], confidence, pooled_seeds)
    if test is None or test["difference"] is None:
        return (100 * (float(base["pairs.accuracy"]) - float(row["pairs.accuracy"])), None, None), per_seed, None
    return (-100 * test["difference"], -100 * test["high"], -100 * test["low"]), per_seed, test["variance_shares"]


def _named(shares: Shares, units: str, base: str) -> dict[str, float] | None:
    """`shares` keyed by what data each part comes from (`units`: what the units are, e.g. "videos"; `base`:
    whose seeds the other side's are, "reference" or "twin"), as :func:`verdict` names them."""
    names = {"units": units, "seeds": "the cell's seeds", "reference_seeds": f"the {base}'s seeds"}
    return None if not shares else {names[key]: share for key, share in shares.items()}


def goal_rows(cells: pd.DataFrame, files: pd.DataFrame, probes: Sequence[dict[str, Any]],
              overopts: Sequence[dict[str, Any]], goals: Sequence[tuple[str, str, float]],
              reference: dict[str, str], confidence: float,
              pooled_seeds: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Each goal of each mitigated cell, measured over its trainings: ``{"label_source", "mitigation", "kind",
    "name", "goal", "models", "value", "low", "high", "verdict", "reference", "twin", "per_seed", "accuracy"}``
    (reference, twin: the same probe, Spearman, share or gap measure of the reference cell and of the cell's own
    twin without mitigation, {value, low, high}, all None for the accuracy goals or without that cell; per_seed:
    the measure of each training in replicate order, unsigned where the goal is, or None; accuracy: the cell's mean
    test pair accuracy)."""
    if not goals or "tag:mitigation" not in cells:
        return []
    probes_of, overopts_of = by_cell(probes), by_cell(overopts)
    untreated = cells[cells["tag:mitigation"] == NO_MITIGATION]
    rows = []
    for row, tags, twin in mitigated_cells(cells):
        key, mitigation = cell_key(tags), row["tag:mitigation"]
        probe, overopt = probes_of.get((key, mitigation)), overopts_of.get((key, mitigation))
        wanted = {**reference, **({"task": tags["task"]} if "task" in tags else {})}
        matches = untreated[np.logical_and.reduce([untreated[f"tag:{k}"].astype(str) == str(v)
                                                   for k, v in wanted.items() if f"tag:{k}" in untreated])]
        reference_row = matches.iloc[0] if reference and len(matches) else None
        reference_key = None if reference_row is None else (cell_key(
            {axis[4:]: str(reference_row[axis]) for axis in reference_row.index if axis.startswith("tag:")}),
            NO_MITIGATION)
        reference_probe, reference_overopt = probes_of.get(reference_key), overopts_of.get(reference_key)
        twin_probe, twin_overopt = probes_of.get((key, NO_MITIGATION)), overopts_of.get((key, NO_MITIGATION))
        for kind, name, limit in goals:
            measured: Interval = (None, None, None)
            shown_name = name
            reference_measure: Interval = (None, None, None)
            twin_measure: Interval = (None, None, None)
            per_seed: list[float] | None = None
            shares: Shares = None
            if kind in ("probe", "spearman") and probe:
                measured, per_seed, shares = _probe_goal(kind, name, probe, confidence)
                if reference_probe:
                    reference_measure = _probe_goal(kind, name, reference_probe, confidence)[0]
                if twin_probe:
                    twin_measure = _probe_goal(kind, name, twin_probe, confidence)[0]
            elif kind == "gap" and overopt:
                kl = common_kl([*overopt, *(twin_overopt or [])], name)
                matrix = None if kl is None else overopt_matrix(overopt, name, kl, "hacking_gap")
                if matrix is not None:
                    measured, per_seed, shares = _mean_gap(matrix, confidence)
                    shown_name = f"{name} @ KL {kl:.2f}"
                    reference_measure = _gap_at(reference_overopt, name, kl, confidence)
                    twin_measure = _gap_at(twin_overopt, name, kl, confidence)
            elif kind == "share" and overopt:
                (measured, per_seed, shares), shown_name = share_goal(name, overopt, confidence)
                if reference_overopt:
                    reference_measure = share_at(shown_name, reference_overopt, confidence)[0]
                if twin_overopt:
                    twin_measure = share_at(shown_name, twin_overopt, confidence)[0]
            elif kind in ACCURACY_GOALS:
                base = reference_row if kind == "below_reference" else twin
                measured, per_seed, shares = _accuracy_below(files, row, base, confidence, pooled_seeds)
            value, low, high = measured
            at_most = GOAL_KINDS[kind][1]
            goal = f"{kind}{':' + shown_name if shown_name else ''} {'≤' if at_most else '≥'} {limit:g}"
            rows.append({"label_source": tags.get("label_source", ""), "mitigation": mitigation, "kind": kind,
                         "name": name, "goal": goal,
                         "models": int(row["replicates"]), "value": value, "low": low, "high": high,
                         "verdict": verdict(value, low, high, limit, at_most,
                                            _named(shares, UNITS.get(kind, "test pairs"),
                                                   "reference" if kind == "below_reference" else "twin")),
                         "reference": dict(zip(("value", "low", "high"), reference_measure)),
                         "twin": dict(zip(("value", "low", "high"), twin_measure)),
                         "twin_meets": twin_measure[0] is not None and verdict(*twin_measure, limit, at_most) == "met",
                         "per_seed": per_seed if per_seed and None not in per_seed else None,
                         "accuracy": float(row["pairs.accuracy"])})
    return rows


def _mean_gap(matrix: np.ndarray, confidence: float) -> Measure:
    """The mean hacking gap of (replicates, prompts) values with its interval over seeds and prompts, each
    training's mean gap, and the parts of its variance."""
    found = replicated_comparison(matrix, confidence=confidence)
    return ((found["difference"], found["low"], found["high"]), [float(v) for v in matrix.mean(axis=1)],
            found["variance_shares"])


def _gap_at(overopts: list[dict[str, Any]] | None, name: str, kl: float, confidence: float) -> Interval:
    """The mean hacking gap of these trainings at `kl` with its interval; Nones where their curves do not reach it."""
    matrix = overopt_matrix(overopts, name, kl, "hacking_gap") if overopts else None
    return (None, None, None) if matrix is None else _mean_gap(matrix, confidence)[0]


def unlearnt_note(rows: Sequence[dict[str, Any]], own: Sequence[tuple[str, str, float]], scope: str) -> str | None:
    """A report note naming the goals among `own` (parsed, e.g. the held-out cues' own) of :func:`goal_rows` rows
    that the cell's own twin without mitigation meets too (None without any): there the cue was not learnt, and
    the goal shows nothing the mitigation did. `scope` says whose goals they are (e.g. "the cues held out of the
    choice")."""
    kinds_and_names = {(kind, name) for kind, name, _ in own}
    shown = [f"{r['label_source']} / {r['mitigation']}: {r['goal']}" for r in rows
             if r.get("twin_meets") and (r["kind"], r["name"]) in kinds_and_names]
    if not shown:
        return None
    return (f"Goals of {scope} that the twin without mitigation meets too, so that they show nothing the mitigation "
            f"did (without it the cue was not learnt): " + "; ".join(shown) + ".")


def _value_and_interval(value: float | None = None, low: float | None = None, high: float | None = None) -> str:
    """"value [low, high]" (the interval left out when missing; "" without a value)."""
    return " ".join(filter(None, (number_cell(value), interval_cell(low, high))))


def goal_table(rows: Sequence[dict[str, Any]], confidence: float, split: str = "test",
               name: str = "mitigation_goals", scope: str = "") -> Table | None:
    """The goals table of :func:`goal_rows` (None without rows); `scope` is added to the caption after the split
    (e.g. which cues chose the recipe, or which were held out of its choice)."""
    if not rows:
        return None
    body = [[f"{r['label_source']} / {r['mitigation']}", r["goal"], str(r["models"]),
             number_cell(r["value"]), interval_cell(r["low"], r["high"]), r["verdict"],
             _value_and_interval(**(r.get("reference") or {})), _value_and_interval(**(r.get("twin") or {})),
             ", ".join(number_cell(v) for v in r.get("per_seed") or [])] for r in rows]
    bold = [[False] * 5 + [r["verdict"] != "met", False, False, False] for r in rows]
    note = (f"Goals of the study (`report.mitigation_goals`), measured on the {split} split: " + "; ".join(
        f"{kind}: {text}" for kind, (text, _) in GOAL_KINDS.items()) + f". Models: trainings (seeds) of the "
        f"mitigated cell; the measure is their mean (of each one's |shift| or |departure| for a probe or share "
        f"goal) and the {100 * confidence:g} % interval is over the seeds and the units (videos for a probe shift, "
        "prompts for a gap or share, test pairs for accuracy, Fisher's z for ρ). "
        "Verdict: met when the whole interval is inside the limit, missed when it is wholly outside (by the "
        "distance of the measure to the limit), unresolved otherwise, with about how many times the data (test "
        "units and seeds) would end its interval at the limit (a projection: at that size the goal is a toss-up) "
        "and the largest part of its variance (the units; the cell's seeds; for an accuracy goal, the reference's "
        "or twin's seeds): the data that would narrow it most, and how much more of that data alone would do the "
        "same (or that no one kind alone would). Reference: the same "
        "probe, Spearman, share or gap measure of the reference cell without mitigation (a gap at the same KL), "
        "with its interval; a limit that the reference misses too is one its labels alone do not meet (the "
        "preference comes with the data, not with the shortcut). Twin: the same measure of the cell's own twin "
        "without mitigation; a limit that the twin meets too shows nothing the mitigation did. Per seed: the "
        "measure of each training alone, in the order of their seeds (an accuracy goal: below the base's training "
        "of the same seed, or below the mean of the base's trainings where it has more seeds).")
    return Table(name, f"Mitigation goals ({split} split{scope}): met, missed or unresolved", GOAL_HEADER, body,
                 bold, 3, note)
