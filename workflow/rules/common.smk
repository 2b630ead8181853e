# Shared definitions: the study's paths and the functions that turn the study design (solireward.study:
# cells, reference cell, per-cell flags, config checks) into wildcards, inputs and `solireward` flags.

import dataclasses
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

STUDY = config["study"]
R = f"results/{STUDY}"
LOGS = f"{R}/logs"
# Rules run the CLI of the package next to this workflow (`python -m solireward.cli`), put first on
# PYTHONPATH here, so a conda env from envs/solireward.yaml (which holds the dependencies) and the
# development venv run the same code. Jobs inherit the variable; cluster jobs re-read this file.
REPO = str(Path(workflow.basedir).parent.resolve())
_PYTHONPATH = os.environ.get("PYTHONPATH", "")
if REPO not in _PYTHONPATH.split(os.pathsep):
    os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [REPO, _PYTHONPATH])))
sys.path.insert(0, REPO)
from solireward.errors import ConfigError  # noqa: E402
from solireward.goal_grammar import check_measurable  # noqa: E402
from solireward.hacking.perturbations import NAMES as PROBE_PERTURBATIONS  # noqa: E402
from solireward.data import frame_cache  # noqa: E402
from solireward.data.synthetic.plan import CUES, TRUSTED_ANNOTATIONS, cue_goals  # noqa: E402
from solireward.study import (  # noqa: E402
    CELL_PATTERN,
    NO_MITIGATION,
    PAIR_SOURCES,
    PAIRINGS,
    REFERENCE_DATA,
    TRUSTED_SOURCE,
    Cell,
    Study,
    data_of,
    load_train_recipe,
)


def _grid_nuisance_defaults() -> dict:
    """The grid's nuisance axes -> default values (called for a share goal only: hacking.grid loads pandas)."""
    from solireward.hacking.grid import NUISANCE_AXES, GridOptions

    defaults = GridOptions()
    return {axis: getattr(defaults, axis) for axis in NUISANCE_AXES}


SELECTION = config["selection"] or {}  # the validation-split choice's settings (null: no choice)
try:
    DESIGN = Study(config, load_train_recipe(config["train_recipe"], REPO))
    # the goals of every report (the choice ranks by these) and those of the held-out cues (the test report's
    # only): the configured ones and each planted cue's own (config `cue_goals`)
    _CUE_GOALS, _HELD_OUT_CUE_GOALS = cue_goals(config["data"]["demo"], DESIGN.held_out, config.get("cue_goals"))
    GOALS = list(dict.fromkeys([*(config["report"].get("mitigation_goals") or []), *_CUE_GOALS]))
    HELD_OUT_GOALS = list(dict.fromkeys([*(SELECTION.get("held_out_goals") or []), *_HELD_OUT_CUE_GOALS]))
    for _field, _goals, _derived in (
        ("report.mitigation_goals", GOALS, _CUE_GOALS),
        ("selection.held_out_goals", HELD_OUT_GOALS, _HELD_OUT_CUE_GOALS),
    ):
        check_measurable(
            _goals,
            f"{_field} (with cue_goals)" if _derived else _field,
            config["probe"],
            config["overopt_grid"] if config.get("overopt") is not None else None,
            PROBE_PERTURBATIONS,
            _grid_nuisance_defaults,
        )
except ConfigError as exc:
    raise WorkflowError(f"config key {exc.field}: {exc.reason}" if exc.field else str(exc)) from None
# a pair folder under pairs/, and the one every cell is tested on (the reference data's test split)
DATA = f"{R}/pairs/{{task}}/{{label_source}}__{{pairing}}"
REFERENCE_PAIRS = f"{R}/pairs/{{task}}/{data_of(**REFERENCE_DATA)}"
CELL = f"{R}/models/{CELL_PATTERN}"
CELL_LOG = f"{CELL_PATTERN}.log"


def cli_flags(options: dict) -> str:
    """`--key value` flags of a mapping (lists space-separated, booleans as true/false, None skipped)."""
    parts = []
    for key, value in options.items():
        if value is None or value == []:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        rendered = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        parts.append(f"--{key} " + " ".join(shlex.quote(v) for v in rendered))
    return " ".join(parts)


def rule_resources(rule: str) -> dict:
    """Threads and resources of a rule: config.resources.<rule> over config.resources.default.

    Job sizes have one source, the study config's `resources` with the schema's defaults (which fill
    every key of `default`); the workflow profiles only say how jobs run.
    """
    return {**config["resources"]["default"], **config["resources"][rule]}


def train_launch() -> dict:
    """GPUs and processes per node and nodes of a training job (config resources.train): one process per GPU,
    `procs_per_node` CPU processes (gloo) without GPUs; one process in all stays a plain `python` run."""
    res = rule_resources("train")
    gpus = res.get("gpu", 0)
    return {"gpus": gpus, "nodes": res.get("nodes", 1), "procs": res.get("procs_per_node", max(gpus, 1))}


TRAIN_LAUNCH = train_launch()
# resumes from MODEL.partial, launches with LAUNCH_SCRIPT, renames MODEL.partial to MODEL
TRAIN_SCRIPT = shlex.quote(str(Path(workflow.basedir, "scripts", "train.sh")))
# sets `launch` to python / torchrun / srun + torchrun for a job's processes (train.sh and the infer rule)
LAUNCH_SCRIPT = shlex.quote(str(Path(workflow.basedir, "scripts", "launch.sh")))


def profile_placeholders() -> list[str]:
    """`rule:resource=value` of every resource a workflow profile (or the command line) set to a value that
    still holds a `<...>` placeholder, e.g. default-resources slurm_partition: "<cpu_partition>"."""
    settings = workflow.resource_settings
    scopes = [
        ("default-resources", settings.default_resources or {}),
        *((f"set-resources {rule}", values) for rule, values in settings.overwrite_resources.items()),
    ]
    found = []
    for scope, values in scopes:
        for key, value in values.items():
            text = str(getattr(value, "raw", value))  # a parsed Resource keeps the profile's text as `raw`
            if re.search(r"<[^<>]+>", text):
                found.append(f"{scope}: {key}={text}")
    return found


_placeholders = profile_placeholders()
if _placeholders:
    raise WorkflowError(
        "the workflow profile still holds placeholders; fill in (or delete) these resources "
        "before running: " + "; ".join(_placeholders)
    )


# --------------------------------------------------------------------------------------------
# Inputs

# each planted-shortcut label source's annotation file (labels_<source>/ imports it), the trusted labels' file
# (labels_trusted/), and the {biased} wildcard of those folders ("" for the clean labels/)
BIASED_FILES = {cue.label_source: cue.annotations for cue in CUES} | {TRUSTED_SOURCE: TRUSTED_ANNOTATIONS}
BIASED_WILDCARD = f"({'|'.join(f'_{source}' for source in BIASED_FILES)})?"


def annotation_files(wildcards) -> list[str]:
    """Binary annotation files: the generated demo file (a cue's biased twin for labels_<source>/) or the real
    ones."""
    if wildcards.biased == f"_{TRUSTED_SOURCE}" and config["data"]["demo"] is None:
        return list(config["data"]["trusted_annotations"])
    if wildcards.biased:
        return [f"{R}/data/{BIASED_FILES[wildcards.biased[1:]]}"]
    if config["data"]["demo"] is not None:
        return [f"{R}/data/annotations.csv"]
    return list(config["data"]["annotations"])


def demo_outputs() -> dict:
    """Extra outputs of demo_data: the planted shortcuts' labels the study uses."""
    used = [*DESIGN.planted_sources(), *([TRUSTED_SOURCE] if DESIGN.demo_writes_trusted_labels() else [])]
    return {source: f"{R}/data/{name}" for source, name in BIASED_FILES.items() if source in used}


def pairwise_source_file() -> str:
    """The study's pairwise file as given: the generated demo votes (exported as a VideoAlign CSV when
    data.pairwise_format is videoalign) or the real file."""
    if config["data"]["demo"] is not None:
        if config["data"]["pairwise_format"] == "videoalign":
            return f"{R}/imports/demo_votes/preferences.csv"
        return f"{R}/data/pairwise_annotations.csv"
    return config["data"]["pairwise_annotations"]


# `import_bench` conversions of the study's own files (a wildcard value -> the format of its input)
CONVERSIONS = {"demo_votes": "votes", "preferences": "videoalign"}


def import_bench_input(wildcards) -> str:
    """The file an import converts: the demo's votes, or the study's pairwise file."""
    if wildcards.conversion == "demo_votes":
        return f"{R}/data/pairwise_annotations.csv"
    return pairwise_source_file()


def pairwise_annotation_file() -> str:
    """Pairwise votes for `solireward pairs`: the source file, or its conversion by `import_bench`."""
    if config["data"]["pairwise_format"] == "videoalign":
        return f"{R}/imports/preferences/votes.csv"
    return pairwise_source_file()


def backbone_dir() -> str:
    """The backbone folder: the tiny generated one or the configured checkpoint."""
    path = config["backbone"]["path"]
    return f"{R}/backbone" if path is None else path


def pairs_inputs(wildcards) -> dict:
    """Inputs of the pairs rule; pairwise labels also need the pairwise annotation file."""
    inputs = {"labels": labels_table(wildcards.label_source)}
    if wildcards.label_source == "pairwise":
        inputs["pairwise"] = pairwise_annotation_file()
    return inputs


def labels_table(label_source: str) -> str:
    """The label table a label source's pairs are built from (each biased source has its own)."""
    return f"{labels_dir(label_source)}/labels.jsonl"


def labels_dir(label_source: str) -> str:
    """The folder of a binary label source's label table, report and audit: labels/, or labels_<source>/."""
    return f"{R}/labels_{label_source}" if label_source in BIASED_FILES else f"{R}/labels"


def pairs_flags(wildcards) -> str:
    """Flags of `solireward pairs` for one task, label source and pairing."""
    try:
        options = DESIGN.pairs_options(wildcards.task, wildcards.label_source, wildcards.pairing)
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None
    if wildcards.label_source == "pairwise":
        options["pairwise_annotations"] = pairwise_annotation_file()
        if config["data"]["video_root"] and config["data"]["pairwise_format"] != "videoalign":
            options["video_root"] = config["data"]["video_root"]
    return cli_flags(options)


# every job of the study keeps the clips it decodes in one folder that the others read (config frame_cache)
if config["frame_cache"]:
    os.environ[frame_cache.ENV] = str(Path(R, "frame_cache").resolve())


# --------------------------------------------------------------------------------------------
# Cells


def cell_files(pattern: str, group: str | None = None) -> list[str]:
    """`pattern` (a path under CELL) for each distinct cell and replicate, optionally of one group only."""
    return [pattern.format(**cell.wildcards()) for cell in DESIGN.cells(group)]


def selection_files(pattern: str) -> list[str]:
    """`pattern` (a path under CELL) for every training of the validation-split choice."""
    return [pattern.format(**cell.wildcards()) for cell in DESIGN.selection_cells()]


def report_goals(test: bool) -> dict:
    """`report` flags of the study's goals (GOALS) and, on the `test` split's report, the held-out cues'
    (HELD_OUT_GOALS): the choice never sees those; {} without any."""
    flags = {"mitigation_goals": GOALS, "held_out_goals": HELD_OUT_GOALS if test else []}
    return {key: goals for key, goals in flags.items() if goals}


def chosen_recipe() -> str:
    """The recipe the validation split chose (results/<study>/selection/chosen.json), read once the checkpoint
    `choose_mitigation` has run: jobs that need it are planned after the choice, never before."""
    with open(checkpoints.choose_mitigation.get().output.chosen, encoding="utf-8") as f:
        return json.load(f)["chosen"]


def report_files(pattern: str) -> list[str]:
    """`pattern` (a path under CELL) for every cell the test-split report reads: the study's cells and, with
    held-out cues (`selection.held_out`), the chosen recipe's cells (the choice is a checkpoint: the held-out
    cells train with the recipe it chose)."""
    cells = DESIGN.cells()
    if DESIGN.held_out:
        cells += [c for c in DESIGN.chosen_cells(chosen_recipe()) if c not in cells]
    return [pattern.format(**cell.wildcards()) for cell in cells]


def train_start(wildcards) -> str:
    """What a cell's training starts from: the backbone, or with a `fine_tune_on` recipe its twin's trained model
    (the same cell and seed without the mitigation)."""
    cell = Cell.from_wildcards(wildcards)
    if DESIGN.fine_tune_source(cell) is None:
        return backbone_dir()
    return f"{R}/models/{CELL_PATTERN.format(**dataclasses.replace(cell, mitigation=NO_MITIGATION).wildcards())}/model"


def train_pairs(wildcards) -> str:
    """A cell's training pairs: its own label source's, or those of the label source its recipe fine-tunes on."""
    source = DESIGN.fine_tune_source(Cell.from_wildcards(wildcards)) or wildcards.label_source
    return f"{R}/pairs/{wildcards.task}/{data_of(source, wildcards.pairing)}/train.json"


def cell_train_yaml(wildcards) -> str:
    """The cell's training flags as YAML text (a rule param, so a change reruns that cell)."""
    return DESIGN.train_options_yaml(Cell.from_wildcards(wildcards))


def eval_tags(wildcards) -> str:
    """`--tag` arguments that identify a cell in the metrics file and the report."""
    tags = DESIGN.tags(Cell.from_wildcards(wildcards))
    return " ".join(shlex.quote(f"{k}={v}") for k, v in tags.items())


# --------------------------------------------------------------------------------------------
# The reward-hacking lab, run by each scoring job (infer.smk) joined to `infer`


def lab_outputs(folder: str, report_label: str | None = None, probe: bool = True) -> dict:
    """The lab's named outputs in `folder` for the lab keys that are on (`probe=False`: the over-optimisation
    alone); with `report_label`, their tables are items of the HTML report under that label."""

    def md(path: str, command: str, subcategory: str):
        return (
            path
            if report_label is None
            else report(
                path,
                caption=f"../report/{command}.rst",
                category="Reward hacking",
                subcategory=subcategory,
                labels={"model": report_label},
            )
        )

    out = {}
    if probe and config["probe"] is not None:
        out.update(probe=f"{folder}/probe/probe.json", probe_md=md(f"{folder}/probe/probe.md", "probe", "stress probe"))
    if config["overopt"] is not None:
        out.update(
            overopt=f"{folder}/overopt/overopt.json",
            overopt_md=md(f"{folder}/overopt/overopt.md", "overopt", "over-optimisation"),
            overopt_figure=f"{folder}/overopt/overopt_curves.png",
        )
    return out


def lab_commands(wildcards, input, output, tagged=eval_tags) -> str:
    """The `--then probe ...` and `--then overopt ...` parts of a scoring job, for the outputs it has; `tagged`
    names the model in their files (`--tag`)."""
    if not {"probe", "overopt"} & set(output.keys()):
        return ""
    model, tags, parts = shlex.quote(str(input.model)), tagged(wildcards), []
    if "probe" in output.keys():
        # on the demo data, a video that already shows a planted cue is left out of the cue's own perturbation
        shown = f"--shown {shlex.quote(f'{R}/data/ground_truth.csv')} " if config["data"]["demo"] is not None else ""
        parts.append(
            f"--then probe --model_name_or_path {model} --input_file {shlex.quote(str(input.videos))} "
            f"--output_dir {shlex.quote(str(Path(output.probe).parent))} --tag {tags} {shown}"
            f"{cli_flags(config['probe'] or {})}"
        )
    if "overopt" in output.keys():
        parts.append(
            f"--then overopt --model_name_or_path {model} --grid_dir {shlex.quote(str(input.grid))} "
            f"--output_dir {shlex.quote(str(Path(output.overopt).parent))} --tag {tags} "
            f"{cli_flags(config['overopt'] or {})}"
        )
    return " ".join(parts)
