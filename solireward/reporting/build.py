"""`solireward report`: every table and figure of a study into README.md, summary.html and tables/."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
from pathlib import Path

import pandas as pd

from solireward import __version__
from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.evaluation import method_footnote
from solireward.goal_grammar import parse_goals
from solireward.io import atomic_path, relative_path, write_json, write_text
from solireward.reporting.figures import accuracy_heatmap, learning_curves, score_histograms
from solireward.reporting.hacking import (OVEROPT_KEYS, PROBE_KEYS, load_results, overopt_curves,
                                          overopt_defect_table, overopt_share_table, overopt_table, probe_heatmap,
                                          probe_table)
from solireward.reporting.choice import (
    CHOICE_FILE, CHOICE_RULES, DEFAULT_RULE, Choice, choice_record, choice_table, rank_candidates,
)
from solireward.reporting.conclusions import CONCLUSIONS_FILE, conclusion, outcome_of_verdict
from solireward.reporting.goals import goal_rows, goal_table, unlearnt_note
from solireward.reporting.mitigation import mitigation_tables
from solireward.reporting.load import FACTORS, _tags, aggregate_replicates, load_metrics, reference_values
from solireward.reporting.stats import Uncertainty, pooled_seeds, replicate_intervals
from solireward.reporting.tables import all_results_table, factor_table
from solireward.study import REPLICATE, Study
from solireward.table import Table, html_page

logger = logging.getLogger(__name__)
MAX_EMBEDDED_CONFIG = 64_000


@dataclasses.dataclass
class ReportConfig:
    """Options of `solireward report` (the paper's tables, the reward-hacking tables and the figures)."""

    metrics: list[str] = arg("metrics JSON files written by `solireward evaluate --tag ...`")
    output_dir: str = arg("folder for the tables (.md, .tex), figures (.png) and README.md")
    scores: list[str] | None = arg("score files (from `solireward infer`) for the histograms; matched to the "
                                   "metrics files by the score path they record, else by position", None)
    study_config: str | None = arg("the study_config.yaml the workflow wrote: its path, hash and contents are "
                                   "recorded in README.md, and its reference cell and cell order are used", None)
    title: str = arg("title of README.md", "SoliReward results")
    reference: list[str] | None = arg("reference value of a factor held fixed in the other tables, as "
                                      "KEY=VALUE (e.g. head=hpqa loss=btt); default: the study's reference cell, "
                                      "else the most frequent value",
                                      None)
    training_logs: list[str] | None = arg("metrics.jsonl of each model's training, in the order of --metrics, "
                                          "for the learning curves", None)
    confidence: float = arg("level of the intervals over replicates; differences with p < 1 - confidence "
                            "are marked significant", 0.95)
    probe: list[str] | None = arg("probe.json of each cell (`solireward probe`): adds the stress-probe table", None)
    overopt: list[str] | None = arg("overopt.json of each cell (`solireward overopt`): adds the over-optimisation "
                                    "table and its curves", None)
    mitigation_goals: list[str] | None = arg("targets of the 'Mitigation goals' table, checked for every mitigated "
                                             "cell, as KIND[:NAME]=LIMIT: probe:PERTURBATION (|mean shift| in "
                                             "clean std, at most), spearman:PERTURBATION (at least), gap:METHOD "
                                             "(hacking gap, at most), below_reference and cost (points of test "
                                             "pair accuracy below the reference cell and below its own twin "
                                             "without mitigation, at most)", None)
    held_out_goals: list[str] | None = arg("goals of the cues held out of the choice (--selection), in the same "
                                           "syntax: judged after --mitigation_goals on every mitigated cell of the "
                                           "test split; the report's note on goals that a held-out cell's own twin "
                                           "meets too names these alone", None)
    split: str = arg("the split the metrics, probe and over-optimisation files were scored on (named in the "
                     "goals and choice tables)", "test")
    choose: bool = arg(f"rank the mitigations by their goals (--choice_rule) and write {CHOICE_FILE}: give the "
                       "files of the split that chooses, i.e. validation", False)
    choice_rule: str = arg("how --choose ranks: " + "; ".join(f"{name}: {text}" for name, text in CHOICE_RULES.items()),
                           DEFAULT_RULE, choices=tuple(CHOICE_RULES))
    selection: str | None = arg(f"the {CHOICE_FILE} of a `--choose` run on the validation split: the report "
                                "says which split chose which recipe", None)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError("give at least one metrics file", field="metrics")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.confidence}", field="confidence")
        self.held_out = parse_goals(self.held_out_goals or [])
        goals = parse_goals(self.mitigation_goals or [])
        self.goals = goals + [goal for goal in self.held_out if goal not in goals]
        if self.choose and self.held_out:
            raise ConfigError("the choice never sees the held-out cues' goals: leave them to the test split's report",
                              field="held_out_goals")
        if self.choose and not self.goals:
            raise ConfigError("choosing ranks the mitigations by their goals: give --mitigation_goals", field="choose")
        if self.training_logs is not None and len(self.training_logs) != len(self.metrics):
            raise ConfigError(f"give one training log per metrics file ({len(self.metrics)}), got "
                              f"{len(self.training_logs)}", field="training_logs")


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
    return html_page(title, "\n".join(parts) + "\n")


def _first_replicates(frame: pd.DataFrame, cells: pd.DataFrame, scores: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The metrics rows and score files of each cell's first replicate (all of them without replicates or
    when score files cannot be matched by their recorded paths)."""
    if f"tag:{REPLICATE}" not in frame or frame["scores_path"].isna().any():
        return frame, scores
    shown = frame.iloc[[m[0] for m in cells["members"]]].drop(columns=[f"tag:{REPLICATE}"]).reset_index(drop=True)
    wanted = {str(Path(p).resolve()) for p in shown["scores_path"]}
    return shown, [s for s in scores if str(Path(s).resolve()) in wanted]


def _study(config_file: str | None) -> Study | None:
    """The study of a workflow-written study_config.yaml; None without one or for a file of other options."""
    if not config_file:
        return None
    try:
        return Study.from_config_file(config_file)
    except ConfigError as exc:
        logger.info("not using %s as a study design (%s); reference values from the metrics files", config_file, exc)
        return None


def build_report(config: ReportConfig) -> list[str]:
    """Write the tables, figures and README.md into `config.output_dir`; returns the file names (relative)."""
    out = Path(config.output_dir)
    tables_dir, figures_dir = out / "tables", out / "figures"
    frame = load_metrics(config.metrics)
    cells = replicate_intervals(aggregate_replicates(frame), frame, config.confidence)
    study = _study(config.study_config)
    refs = reference_values(frame, config.reference, study.reference_tags() if study else None)
    uncertainty = Uncertainty(frame, config.confidence, pooled_seeds(cells, frame))
    files: dict[str, str] = {}
    notes: list[str] = []
    sections: list[str] = []
    tables: list[Table] = []

    def write_table(table: Table, what: str, page: bool = True) -> None:
        if page:  # in summary.html (a table too wide for the page is shown there as a figure)
            tables.append(table)
        for suffix, kind in (("md", "Markdown"), ("tex", "LaTeX, booktabs"), ("html", "HTML")):
            text = {"md": table.markdown, "tex": table.latex, "html": table.html}[suffix]()
            write_text(tables_dir / f"{table.name}.{suffix}", text)
            files[f"tables/{table.name}.{suffix}"] = f"{what} ({kind})"

    def section(table: Table, title: str, page: bool = True) -> None:
        write_table(table, table.caption, page)
        sections.extend([f"### {title}", "", table.markdown(),
                         f"Files: [`{table.name}.md`](tables/{table.name}.md), [`{table.name}.tex`]"
                         f"(tables/{table.name}.tex), [`{table.name}.html`](tables/{table.name}.html)", ""])

    for factor in FACTORS:
        table, reason = factor_table(cells, factor, refs, uncertainty)
        if table is None:
            notes.append(f"No table per {factor}: {reason}.")
            continue
        section(table, FACTORS[factor][1])
    order = study.order if study is not None else None
    probes = load_results(config.probe, "probe", PROBE_KEYS, order) if config.probe else []
    overopt = load_results(config.overopt, "overopt", OVEROPT_KEYS, order) if config.overopt else []
    if probes:
        section(probe_table(probes), "Reward hacking: stress probe", page=False)
    if overopt:
        section(overopt_table(overopt), "Reward hacking: over-optimisation")
        for task in dict.fromkeys(result["task"] for result in overopt):
            defects = overopt_defect_table([result for result in overopt if result["task"] == task])
            if defects is not None:
                section(defects, f"Reward hacking: what optimisation can exploit ({task})")
            shares = overopt_share_table([result for result in overopt if result["task"] == task])
            if shares is not None:
                section(shares, f"Reward hacking: where the picks land on each nuisance ({task})")
    choice = Choice.read(config.selection) if config.selection else None
    for table in mitigation_tables(cells, frame, probes, overopt, config.confidence, uncertainty.pooled_seeds,
                                   uncertainty.conclusions, choice.roles() if choice else None):
        section(table, table.caption)
    judged = goal_rows(cells, frame, probes, overopt, config.goals, refs, config.confidence, uncertainty.pooled_seeds)
    for held_out, name in ((False, "mitigation_goals"), (True, "mitigation_goals_held_out")):
        rows = [r for r in judged
                if bool(choice and choice.is_held_out(r["label_source"], r["mitigation"])) == held_out]
        goals = goal_table(rows, config.confidence, config.split, name, choice.scope(held_out) if choice else "")
        if goals is not None:
            section(goals, goals.caption)
        unlearnt = unlearnt_note(rows, config.held_out, "the cues held out of the choice") if held_out else None
        if unlearnt:
            notes.append(unlearnt)
    uncertainty.conclusions += [conclusion("goal", f"{r['label_source']} / {r['mitigation']}", r["goal"],
                                           outcome_of_verdict(r["verdict"]), r["value"]) for r in judged]
    write_json(out / CONCLUSIONS_FILE, uncertainty.conclusions)
    files[CONCLUSIONS_FILE] = ("every conclusion of the tables, three-valued (JSON; `solireward compare-reports` "
                               "lists where two runs contradict)")
    if config.choose:
        ranked = rank_candidates(judged, config.choice_rule)
        if not ranked:
            raise InputError("no mitigated cell with its goals measured to choose among", field="choose")
        section(choice_table(ranked, config.split, config.choice_rule),
                f"Choosing a mitigation on the {config.split} split")
        write_json(out / CHOICE_FILE, choice_record(ranked, config.split, study.choosing_sources() if study else (),
                                                    study.held_out if study else (), config.choice_rule))
        files[CHOICE_FILE] = ("the chosen mitigation, the rule and every candidate's verdict counts and goals won "
                              "(JSON)")
    chosen = [choice.note()] if choice else []
    if not chosen and not config.choose and judged:
        chosen = ["The mitigation recipes were given in the study config, not chosen by this run (a study config's "
                  "`selection` chooses them on the validation split, `snakemake choose_mitigation`)."]
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
        collapsed = _collapsed(config.metrics, config.training_logs)
        if collapsed:
            notes.append("Scores collapsed in training (flagged by `solireward train`: these models rank nothing, "
                         "and `serve` refuses them): "
                         + ", ".join(f"`{relative_path(m, out)}`" for m in collapsed) + ".")
    else:
        notes.append("No learning curves: no training logs were given (`--training_logs`).")
    if probes:
        probe_heatmap(probes, figures_dir / "probe_heatmap.png")
        figure("probe_heatmap.png", None, "the stress probe's mean score change per cell and perturbation (the "
               "stress_probe table as a heatmap; summary.html shows this instead of the wide table)", "")
    if overopt:
        overopt_curves(overopt, figures_dir / "overopt_curves.png")
        figure("overopt_curves.png", None, "best-of-n gold and proxy against √KL, one line per cell", "")
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
        + "Each row's interval and its paired test against its table's reference row (Δ, p) use the test "
        f"pairs' design: {method_footnote()} * marks p < {1 - config.confidence:.2g}; a difference without * "
        "cannot be told from noise at this test-set size and number of trainings (a row of one training is "
        "marked only when a seed variance pooled from replicated cells covers its training noise).")
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
              *(["## Choice of recipes", "", *chosen, ""] if chosen else []),
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
    write_text(out / "summary.html", _summary_html(config.title, " ".join([uncertainty_text, *chosen]), tables,
                                                   figures, notes, out))
    for note in notes:
        logger.info(note)
    return list(files)


def _collapsed(metrics: list[str], training_logs: list[str]) -> list[str]:
    """The metrics files whose model collapsed in training: ``"collapsed": true`` in the train_summary.json beside
    its training log (`solireward train`'s output folder)."""
    found = []
    for source, log in zip(metrics, training_logs):
        summary = Path(log).with_name("train_summary.json")
        if summary.is_file() and json.loads(summary.read_text(encoding="utf-8")).get("collapsed"):
            found.append(source)
    return found
