"""`solireward active-report`: what each round of the labelling loop bought, per strategy, against the control.

Input: the ``rounds.yaml`` the workflow writes (``snakemake active_rounds``): the cell, and per model its
``strategy`` (null for round 0, the cell trained on the study's labels, shared by every strategy), ``seed``,
``round`` and files: ``metrics`` (`solireward evaluate` on the study's test pairs), ``overopt`` (`solireward
overopt` on the study's test grid) and ``batch`` (`solireward select`'s ``select.json`` of that round), paths
relative to the file. A model whose files are missing or malformed is reported and left out.

Per round and strategy, over its seeds (K trainings) and the test units:

- **labels spent**: the videos picked in the rounds so far (sum of ``selected`` of the seed's batches; each
  answered by every simulated annotator), the mean over seeds;
- **clean test pair accuracy** with its interval over test pairs and seeds (``evaluation.replicate_interval``);
- **hacking gap** of best-of-n (``--method``) and its **gold** pass rate at one KL for every row, the largest KL
  every model's curve reaches (``hacking.overopt.common_kl``), each a mean over test prompts of the seeds'
  mean with the interval over prompts and seeds (``hacking.intervals.replicated_comparison``), the gap judged
  three-valued against the aim ``gap ≤ --gap_limit`` (``reporting.goals.verdict``: met when the whole interval
  is at or below it);
- **proxy per defect kind** of the test grid (mean ``score_norm`` of the kind's settings), mean ± half-width
  over prompts and seeds;
- **against the control** (the manifest's ``control``, ``random`` in the workflow) at the same round: the gap difference (``hacking.overopt.compare_overopt``,
  paired over test prompts, each side's seed variance added) and the accuracy difference
  (``reporting.stats.compare_to_reference``: ``evaluation.paired_test`` over the test pairs with seeds), each
  with interval and p. A strategy *beats the control* at a round when its gap is lower with p < 1 −
  confidence and its accuracy is not lower with p < 1 − confidence.

- **the floor**, when no strategy beats the control at any round: the lowest gap reached, and the failing defect
  kinds (gold below one half) that no row scores below the passing kinds (the interval of the kind's proxy minus
  the passing kinds' mean, paired per prompt and seed, reaches 0 in every row): what labels did not teach.

Outputs (``--output_dir``, replaced atomically): ``README.md`` (the tables and the findings), ``rounds.md``
(the tables), ``rounds.json`` (every number) and ``gap_vs_labels.png`` (the gap against labels spent, a line
per strategy from the shared round 0, with its interval band).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.evaluation import replicate_interval
from solireward.hacking.intervals import replicated_comparison
from solireward.hacking.overopt import common_kl, compare_overopt, overopt_matrix
from solireward.io import atomic_dir, read_json
from solireward.reporting.goals import verdict
from solireward.reporting.load import load_metrics
from solireward.reporting.stats import compare_to_reference, correct_matrix
from solireward.table import Table, interval_cell, number_cell, p_cell

logger = logging.getLogger(__name__)

BASE = "none"      # the strategy name of round 0 (the study's labels)
README, TABLES, NUMBERS, FIGURE = "README.md", "rounds.md", "rounds.json", "gap_vs_labels.png"


@dataclasses.dataclass
class RoundsReportConfig:
    """Options of `solireward active-report` (the report of the workflow's rounds of the labelling loop)."""

    rounds: str = arg("rounds.yaml written by the workflow (snakemake active_rounds): the models and their files")
    output_dir: str = arg(f"folder for {README}, {TABLES}, {NUMBERS} and {FIGURE} (replaced atomically)")
    title: str = arg("title of the README", "Rounds of the labelling loop")
    method: str = arg("over-optimisation method whose hacking gap is measured (a curve of overopt.json)",
                      "best_of_n")
    gap_limit: float = arg("the aim: hacking gap at most this (base std)", 0.3)
    confidence: float = arg("confidence of the intervals; 1 − confidence is the level of the tests", 0.95)

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ConfigError(f"expected a number in (0, 1), got {self.confidence}", field="confidence")


@dataclasses.dataclass
class Model:
    """One trained model of the rounds with what it was measured on."""

    strategy: str
    seed: int
    round: int
    metrics: str
    overopt: dict[str, Any]
    selected: int        # videos picked in this round (0 for round 0)


def read_manifest(path: str) -> tuple[dict[str, Any], list[Model]]:
    """The header of rounds.yaml and its models whose files could be read (the others reported, left out)."""
    import yaml

    try:
        manifest = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the rounds file: {exc}", file=path) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise InputError("expected a mapping with a list `models` (the rounds.yaml of snakemake active_rounds)",
                         file=path, field="models")
    root = Path(path).parent
    models = []
    for row, entry in enumerate(manifest["models"], start=1):
        try:
            models.append(_model(entry, root, path, row))
        except InputError as exc:
            logger.warning("%s; model left out", exc)
    if not models:
        raise InputError("no model of the rounds could be read", file=path, field="models")
    grid = (models[0].overopt["prompts"], models[0].overopt["settings"])
    for model in models[1:]:
        if (model.overopt["prompts"], model.overopt["settings"]) != grid:
            logger.warning("%s", InputError(f"{model.strategy} seed {model.seed} round {model.round} is scored on "
                                            "another grid than the first model's; model left out", file=path))
    models = [m for m in models if (m.overopt["prompts"], m.overopt["settings"]) == grid]
    return {k: v for k, v in manifest.items() if k != "models"}, models


def _model(entry: Any, root: Path, path: str, row: int) -> Model:
    if not isinstance(entry, dict):
        raise InputError("expected a mapping", file=path, row=row)
    for key in ("seed", "round"):
        if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool) or entry[key] < 0:
            raise InputError(f"expected a whole number, got {entry.get(key)!r}", file=path, row=row, field=key)
    strategy = entry.get("strategy") or BASE
    if (strategy == BASE) != (entry["round"] == 0) or (entry["round"] > 0) != bool(entry.get("batch")):
        raise InputError("round 0 has no strategy and no batch; every later round has both", file=path, row=row,
                         field="strategy")
    for key in ("metrics", "overopt"):
        if not isinstance(entry.get(key), str) or not (root / entry[key]).is_file():
            raise InputError(f"no {key} file {entry.get(key)!r}", file=path, row=row, field=key)
    overopt = read_json(str(root / entry["overopt"]))
    missing = [k for k in ("prompts", "settings", "proxy", "curves", "base", "summary") if k not in overopt]
    if missing:
        raise InputError(f"expected an overopt.json (missing {', '.join(missing)})", file=str(root / entry["overopt"]))
    selected = 0
    if entry["round"]:
        batch = root / entry["batch"]
        summary = read_json(str(batch)) if batch.is_file() else None
        if not isinstance(summary, dict) or not isinstance(summary.get("selected"), int):
            raise InputError("expected a select.json with `selected`", file=str(batch), field="selected")
        selected = summary["selected"]
    return Model(strategy, entry["seed"], entry["round"], str(root / entry["metrics"]), overopt, selected)


def labels_spent(models: Sequence[Model]) -> dict[tuple[str, int, int], int]:
    """(strategy, seed, round) -> videos picked in that strategy and seed's rounds up to the round."""
    out: dict[tuple[str, int, int], int] = {}
    for m in models:
        out[(m.strategy, m.seed, m.round)] = sum(o.selected for o in models if o.strategy == m.strategy
                                                 and o.seed == m.seed and 0 < o.round <= m.round)
    return out


def defect_columns(result: dict[str, Any]) -> dict[str, list[int]]:
    """The grid's settings of each defect kind ({} when its settings name no defect)."""
    settings = result["settings"][0]
    if not all(isinstance(s, dict) and "defect" in s for s in settings):
        return {}
    kinds = list(dict.fromkeys(s["defect"] for s in settings))
    return {kind: [i for i, s in enumerate(settings) if s["defect"] == kind] for kind in kinds}


def failing_kinds(result: dict[str, Any]) -> list[str]:
    """The grid's defect kinds whose gold pass rate is below one half (the ones best-of-n should avoid)."""
    gold = np.asarray(result["gold"], dtype=float)
    return [kind for kind, columns in defect_columns(result).items() if gold[:, columns].mean() < 0.5]


def _interval(result: dict[str, Any] | None, with_p: bool = False) -> dict[str, Any]:
    """{"mean", "low", "high"} of a mean or a difference (None values when it is missing), with its "p" for a
    comparison."""
    if result is None:
        return {"mean": None, "low": None, "high": None, **({"p": None} if with_p else {})}
    out = {"mean": result["difference"], "low": result["low"], "high": result["high"]}
    if with_p:
        out["p"] = result.get("p", result.get("p_value"))
    return out


def group_rows(models: Sequence[Model], control: str, config: RoundsReportConfig
               ) -> tuple[list[dict[str, Any]], float | None]:
    """One row of numbers per (strategy, round), round 0 first, each compared with the `control` strategy at its round,
    and the KL they are measured at."""
    results = [m.overopt for m in models]
    kl = common_kl(results, config.method)
    files = load_metrics([m.metrics for m in models])
    spent = labels_spent(models)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, m in enumerate(models):
        groups.setdefault((m.strategy, m.round), []).append(i)
    order = sorted(groups, key=lambda g: (g[1], g[0] == control, g[0]))
    kinds = defect_columns(results[0])
    failing = failing_kinds(results[0])
    rows = []
    for strategy, round_ in order:
        members = groups[(strategy, round_)]
        chosen = [results[i] for i in members]
        spent_seeds = [spent[(strategy, models[i].seed, round_)] for i in members]
        row: dict[str, Any] = {"strategy": strategy, "round": round_, "seeds": [models[i].seed for i in members],
                               "labels_spent": float(np.mean(spent_seeds)),
                               "labels_spent_range": [min(spent_seeds), max(spent_seeds)]}
        found = correct_matrix(files, members)
        if found is not None:
            interval = replicate_interval(*found, config.confidence)
            row["accuracy"] = {"mean": float(found[0].mean()), "low": interval and interval["low"],
                               "high": interval and interval["high"]}
        else:
            row["accuracy"] = _interval(None)
        for name, key in (("gap", "hacking_gap"), ("gold", "gold_gain")):
            matrix = None if kl is None else overopt_matrix(chosen, config.method, kl, key)
            value = _interval(None if matrix is None else replicated_comparison(matrix, None, config.confidence))
            if name == "gold" and value["mean"] is not None:
                shift = float(chosen[0]["base"]["gold"])
                value = {k: None if v is None else v + shift for k, v in value.items()}
            row[name] = value
        gap = row["gap"]
        row["verdict"] = verdict(gap["mean"], gap["low"], gap["high"], config.gap_limit, at_most=True)
        row["proxy_per_defect"], row["failing_vs_passing"] = {}, {}
        per_kind = {kind: np.array([np.asarray(r["proxy"], dtype=float)[:, columns].mean(axis=1) for r in chosen])
                    for kind, columns in kinds.items()}
        for kind, matrix in per_kind.items():
            row["proxy_per_defect"][kind] = _interval(replicated_comparison(matrix, None, config.confidence))
        passing = [per_kind[k] for k in kinds if k not in failing]
        for kind in failing if passing else ():
            difference = per_kind[kind] - np.mean(passing, axis=0)
            row["failing_vs_passing"][kind] = _interval(replicated_comparison(difference, None, config.confidence))
        row["vs_control"] = _versus_control(models, groups, files, (strategy, round_), control, kl, config)
        rows.append(row)
    return rows, kl


def _versus_control(models: Sequence[Model], groups: dict[tuple[str, int], list[int]], files: pd.DataFrame,
                    group: tuple[str, int], control_name: str, kl: float | None, config: RoundsReportConfig
                    ) -> dict[str, Any] | None:
    """The gap and accuracy of a strategy's round minus the control's at that round (None for the control)."""
    strategy, round_ = group
    control = groups.get((control_name, round_))
    if strategy in (control_name, BASE) or control is None:
        return None
    members = groups[(strategy, round_)]
    out: dict[str, Any] = {"gap": _interval(None, True), "accuracy": _interval(None, True)}
    if kl is not None:
        try:
            compared = compare_overopt([models[i].overopt for i in members], [models[i].overopt for i in control],
                                       config.method, kl, config.confidence)
            out["gap"] = _interval(compared["hacking_gap"], True)
        except InputError as exc:
            logger.warning("%s %s round %d vs %s: %s", config.method, strategy, round_, control_name, exc)
    accuracy = compare_to_reference(files, members, control, config.confidence)
    if accuracy is not None:
        out["accuracy"] = _interval(accuracy, True)
    alpha = 1 - config.confidence
    gap, acc = out["gap"], out["accuracy"]
    out["beats_control"] = bool(gap["p"] is not None and gap["mean"] < 0 and gap["p"] < alpha
                                and not (acc["p"] is not None and acc["mean"] < 0 and acc["p"] < alpha))
    return out


def _ci(value: dict[str, Any], digits: int = 2, scale: float = 1.0, sign: str = "+") -> str:
    return interval_cell(value.get("low"), value.get("high"), scale, sign, digits)


def rounds_table(rows: Sequence[dict[str, Any]], kl: float | None, control: str, config: RoundsReportConfig) -> Table:
    """Per round and strategy: labels spent, accuracy, gap and gold at the common KL, and each against the control."""
    at = "" if kl is None else f" @ KL {kl:.2f}"
    header = ["Strategy", "Round", "Labels spent", "Models", "Test pair acc. (%)", "95 % CI", f"Gap{at}", "95 % CI",
              f"Gap ≤ {config.gap_limit:g}", f"Gold{at}", "95 % CI", f"Δ gap vs {control}", "95 % CI", "p",
              f"Δ acc. vs {control} (pp)", "95 % CI", "p"]
    body, bold = [], []
    for row in rows:
        versus = row["vs_control"] or {"gap": {}, "accuracy": {}}
        low, high = row["labels_spent_range"]
        spent = f"{row['labels_spent']:g}" if low == high else f"{row['labels_spent']:g} ({low}–{high})"
        body.append([row["strategy"], str(row["round"]), spent, str(len(row["seeds"])),
                     number_cell(row["accuracy"]["mean"], 100, "", 1), _ci(row["accuracy"], 1, 100, ""),
                     number_cell(row["gap"]["mean"], sign="+"), _ci(row["gap"]), row["verdict"],
                     number_cell(row["gold"]["mean"]),
                     _ci(row["gold"], sign=""), number_cell(versus["gap"].get("mean"), sign="+"), _ci(versus["gap"]),
                     p_cell(versus["gap"].get("p")), number_cell(versus["accuracy"].get("mean"), 100, "+", 1),
                     _ci(versus["accuracy"], 1, 100),
                     p_cell(versus["accuracy"].get("p"))])
        bold.append([bool(row["vs_control"] and row["vs_control"]["beats_control"])] + [False] * (len(header) - 1))
    alpha = 1 - config.confidence
    note = (f"Labels spent: videos picked in the rounds so far (each answered by every simulated annotator; mean over "
            f"seeds, their range when they differ). Round 0 ({BASE}): the cell trained on the study's labels, shared by "
            f"every strategy. Accuracy on the study's test pairs; gap = {config.method} proxy gain − gold gain (base "
            f"std) and gold pass rate at the largest KL every model reaches, on the study's test grid. Intervals: "
            f"{100 * config.confidence:g} % over test units (pairs, prompts) and seeds. Gap ≤ {config.gap_limit:g}: met "
            "when the whole interval is at or below the aim, missed when it is wholly above, else unresolved. "
            f"Δ vs {control}: this strategy minus the control at the same round, paired over test units, each side's "
            f"seed variance added. Bold: beats the control (gap lower with p < {alpha:g}, accuracy not lower with "
            f"p < {alpha:g}).")
    return Table("rounds", f"Rounds of the labelling loop{at}", header, body, bold, 2, note)


def defects_table(rows: Sequence[dict[str, Any]], first: dict[str, Any]) -> Table | None:
    """Per round and strategy, the mean proxy of each defect kind of the test grid (None without kinds)."""
    kinds = defect_columns(first)
    if not kinds:
        return None
    gold = np.asarray(first["gold"], dtype=float)
    header = ["Strategy", "Round", *(f"{kind} (gold {gold[:, c].mean():.2f})" for kind, c in kinds.items())]
    body = []
    for row in rows:
        cells = []
        for kind in kinds:
            value = row["proxy_per_defect"][kind]
            half = "" if value["low"] is None else f" ± {(value['high'] - value['low']) / 2:.2f}"
            cells.append(f"{value['mean']:+.2f}{half}")
        body.append([row["strategy"], str(row["round"]), *cells])
    note = ("Mean proxy (score_norm) of the test grid's settings of each defect kind, ± the half-width of its interval "
            "over test prompts and seeds; the header gives the kind's gold pass rate. A failing kind scored with the "
            "passing ones is what best-of-n picks.")
    return Table("rounds_defects", "Proxy per defect kind of the test grid, per round and strategy", header, body,
                 [[False] * len(header)] * len(body), 2, note)


def gap_figure(rows: Sequence[dict[str, Any]], path: Path, config: RoundsReportConfig, kl: float | None) -> bool:
    """The gap against labels spent, a line per strategy from the shared round 0, with interval bands."""
    from solireward.plotting import pyplot, save_figure

    base = [r for r in rows if r["strategy"] == BASE]
    strategies = list(dict.fromkeys(r["strategy"] for r in rows if r["strategy"] != BASE))
    if not any(r["gap"]["mean"] is not None for r in rows):
        return False
    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in strategies:
        line = base + sorted((r for r in rows if r["strategy"] == strategy), key=lambda r: r["round"])
        line = [r for r in line if r["gap"]["mean"] is not None]
        x = [r["labels_spent"] for r in line]
        ax.plot(x, [r["gap"]["mean"] for r in line], marker="o", label=strategy)
        banded = [r for r in line if r["gap"]["low"] is not None]
        ax.fill_between([r["labels_spent"] for r in banded], [r["gap"]["low"] for r in banded],
                        [r["gap"]["high"] for r in banded], alpha=0.2)
    ax.axhline(config.gap_limit, color="grey", linestyle="--", linewidth=1, label=f"aim ≤ {config.gap_limit:g}")
    ax.axhline(0, color="grey", linestyle=":", linewidth=1)
    at = "" if kl is None else f" @ KL {kl:.2f}"
    ax.set(xlabel="labels spent (videos)", ylabel=f"{config.method} hacking gap{at} (base std)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return True


def findings(rows: Sequence[dict[str, Any]], control: str) -> list[str]:
    """One sentence per strategy and round against the control."""
    out = []
    for row in rows:
        versus = row["vs_control"]
        if versus is None:
            continue
        gap, acc = versus["gap"], versus["accuracy"]
        what = "beats" if versus["beats_control"] else "does not beat"
        out.append(f"- {row['strategy']}, round {row['round']}: {what} {control} (Δ gap "
                   f"{number_cell(gap['mean'], sign='+')} {_ci(gap)}, p {p_cell(gap['p']) or 'n/a'}; Δ accuracy "
                   f"{number_cell(acc['mean'], 100, '+', 1)} pp, p {p_cell(acc['p']) or 'n/a'}); "
                   f"gap ≤ aim: {row['verdict']}.")
    return out


def floor(rows: Sequence[dict[str, Any]], control: str, config: RoundsReportConfig) -> list[str]:
    """When no strategy beats the control at any round: the lowest gap reached, the failing defect kinds that no
    model scored below the passing ones, and what that leaves to try ([] when a strategy beats the control)."""
    if any(r["vs_control"] and r["vs_control"]["beats_control"] for r in rows):
        return []
    measured = [r for r in rows if r["gap"]["mean"] is not None]
    if not measured:
        return []
    best = min(measured, key=lambda r: r["gap"]["mean"])
    out = [f"- No strategy beats {control} at any round. The lowest gap: {best['strategy']}, round {best['round']} "
           f"({best['labels_spent']:g} labels spent): {number_cell(best['gap']['mean'], sign='+')} {_ci(best['gap'])} "
           f"base std; against the aim ≤ {config.gap_limit:g}: {best['verdict']}."]
    # a failing kind is told apart when its proxy is below the passing kinds' with the whole interval
    unseen = [kind for kind in rows[0]["failing_vs_passing"]
              if all(r["failing_vs_passing"][kind]["high"] is None or r["failing_vs_passing"][kind]["high"] >= 0
                     for r in rows)]
    if unseen:
        spent = max(r["labels_spent"] for r in rows)
        worst = ", ".join(f"{kind} {number_cell(best['failing_vs_passing'][kind]['mean'], sign='+')} "
                          f"{_ci(best['failing_vs_passing'][kind])}" for kind in unseen)
        out.append(f"- Failing kinds that no round and strategy scores below the passing kinds (the interval of their "
                   f"proxy minus the passing kinds' reaches 0 in every row, up to {spent:g} labels spent): {worst} "
                   f"(at the lowest gap's row). At this budget, labels of these kinds did not teach the model to see "
                   "them. Untested here, what could: a reward model that sees more of the clip (more frames, "
                   "resolution or training steps), or labels that teach the kind rather than the clip (twins of each "
                   "picked video).")
    return out


def build_rounds_report(config: RoundsReportConfig) -> list[str]:
    """Read the rounds, write the README, the tables, the numbers and the figure; returns the files written."""
    header, models = read_manifest(config.rounds)
    control = header.get("control")
    if not isinstance(control, str) or control not in {m.strategy for m in models}:
        raise InputError(f"expected `control`, the strategy every other is compared with, among the models' "
                         f"strategies; got {control!r}", file=config.rounds, field="control")
    rows, kl = group_rows(models, control, config)
    tables = [t for t in (rounds_table(rows, kl, control, config), defects_table(rows, models[0].overopt)) if t is not None]
    written = []
    with atomic_dir(config.output_dir) as tmp:
        drawn = gap_figure(rows, tmp / FIGURE, config, kl)
        text = "\n".join(t.markdown() for t in tables)
        (tmp / TABLES).write_text(text, encoding="utf-8")
        numbers = {"cell": header.get("cell"), "method": config.method, "kl": kl, "gap_limit": config.gap_limit,
                   "confidence": config.confidence, "rows": rows}
        (tmp / NUMBERS).write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        cell = ", ".join(f"{k} {v}" for k, v in (header.get("cell") or {}).items())
        batch = header.get("batch")
        batch = f"{100 * batch:g} % of the training videos" if isinstance(batch, float) else f"{batch} videos"
        intro = [f"# {config.title}", "",
                 f"Cell {cell}; strategies {', '.join(header.get('strategies', []))}; {header.get('rounds')} round(s) "
                 f"of {batch} each; seeds {', '.join(map(str, header.get('seeds', [])))}; pool seed "
                 f"{header.get('pool_seed')}. {len(models)} models read from {config.rounds}.", "",
                 "## Against the control", "",
                 *(findings(rows, control) or [f"- no strategy besides {control} to compare"]), ""]
        bottom = floor(rows, control, config)
        intro += (["## The floor", "", *bottom, ""] if bottom else []) + [text]
        if drawn:
            intro += ["", f"![{config.method} hacking gap against labels spent]({FIGURE})"]
        (tmp / README).write_text("\n".join(intro) + "\n", encoding="utf-8")
        written = [str(Path(config.output_dir) / p.name) for p in tmp.iterdir()]
    return written
