# Shared definitions: the study's paths, the list of grid cells, and the functions that turn the
# validated config into `solireward` flags and per-cell training configs.

import os
import re
import shlex
from pathlib import Path

import yaml
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
# Shell snippet choosing the launcher from the job's GPU count (which a profile may override):
# torchrun (torch.distributed.run) with one process per GPU when there are several, else one process.
GPU_LAUNCHER = (
    "if [ {resources.gpu} -gt 1 ]; then "
    "launch='python -m torch.distributed.run --standalone --nproc_per_node {resources.gpu}'; else launch=python; fi;"
)

GRID_LABELS, GRID_PAIRING = "binary", "cross_prompt"
# pairwise annotations compare two videos of one prompt, so their pairs are in-prompt pairs
LABEL_SOURCE_PAIRING = {"binary": None, "pairwise": "in_prompt"}
REFERENCE_PAIRS = f"{R}/pairs/{{task}}/{GRID_LABELS}__{GRID_PAIRING}"
# `replicate` is "" for the first training of a cell and "__rep<r>" for the r-th repeat (config `replicates`),
# so a study with one replicate keeps its paths; replicate r trains with seed = the cell's seed + r.
CELL = f"{R}/models/{{task}}/{{labels}}__{{pairing}}/{{head}}__{{loss}}{{replicate}}"
CELL_LOG = "{task}/{labels}__{pairing}/{head}__{loss}{replicate}.log"
REPLICATES = [""] + [f"__rep{r}" for r in range(1, config["replicates"])]


def check_config() -> None:
    """Cross-key checks the JSON schema cannot express; each failure names the key."""
    grid = config["grid"]
    for key, names, section in (
        ("grid.heads", grid["heads"], "heads"),
        ("grid.losses", grid["losses"], "losses"),
        ("grid.default_head", [grid["default_head"]], "heads"),
        ("grid.default_loss", [grid["default_loss"]], "losses"),
    ):
        missing = [n for n in names if n not in config[section]]
        if missing:
            raise WorkflowError(
                f"config key {key}: {', '.join(missing)} is not defined under "
                f"'{section}' (defined: {', '.join(config[section])})"
            )
    data = config["data"]
    if data["demo"] is None and not data["annotations"]:
        raise WorkflowError("config key data: give data.demo (generated data) or data.annotations (real files)")
    if data["demo"] is None and "pairwise" in config["ablations"]["labels"] and not data["pairwise_annotations"]:
        raise WorkflowError("config key ablations.labels: 'pairwise' needs data.pairwise_annotations")
    if config["backbone"]["path"] is None and data["demo"] is None:
        raise WorkflowError("config key backbone.path: a real study needs a backbone checkpoint folder")
    if config["replicates"] > 1 and "seed" not in {**TRAIN_RECIPE, **config["train"]}:
        raise WorkflowError(
            "config key replicates: give train.seed (or a seed in the train_recipe); "
            "replicate r trains with that seed + r"
        )


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
# resumes from MODEL.partial, launches python / torchrun / srun + torchrun, renames MODEL.partial to MODEL
TRAIN_SCRIPT = shlex.quote(str(Path(workflow.basedir, "scripts", "train.sh")))


def load_train_recipe() -> dict:
    """The flags of the study's `train_recipe` file ({} when it is null); a relative path is read from REPO."""
    name = config["train_recipe"]
    if name is None:
        return {}
    path = Path(REPO, name)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"config key train_recipe: cannot read {path}: {exc}") from None
    if recipe is None:
        return {}
    if not isinstance(recipe, dict) or not all(isinstance(k, str) for k in recipe):
        raise WorkflowError(f"config key train_recipe: {path} must hold a mapping of `solireward train` flags")
    return recipe


TRAIN_RECIPE = load_train_recipe()
check_config()


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


def annotation_files() -> list[str]:
    """Binary annotation files: the generated demo file or the real ones."""
    if config["data"]["demo"] is not None:
        return [f"{R}/data/annotations.csv"]
    return list(config["data"]["annotations"])


def pairwise_source_file() -> str:
    """The study's pairwise file as given: the generated demo votes (exported as a VideoAlign CSV when
    data.pairwise_format is videoalign) or the real file."""
    if config["data"]["demo"] is not None:
        if config["data"]["pairwise_format"] == "videoalign":
            return f"{R}/imports/demo_votes/preferences.csv"
        return f"{R}/data/pairwise_annotations.csv"
    return config["data"]["pairwise_annotations"]


# `import_bench` conversions: import name -> format of its input
IMPORTS = {"demo_votes": "votes", "preferences": "videoalign"}


def import_bench_input(wildcards) -> str:
    """The file an import converts: the demo's votes, or the study's pairwise file."""
    if wildcards.bench == "demo_votes":
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
    inputs = {"labels": f"{R}/labels/labels.jsonl"}
    if wildcards.labels == "pairwise":
        if wildcards.pairing != LABEL_SOURCE_PAIRING["pairwise"]:
            raise WorkflowError(
                f"pairwise labels give {LABEL_SOURCE_PAIRING['pairwise']} pairs; "
                f"ask for .../pairwise__{LABEL_SOURCE_PAIRING['pairwise']}/..., "
                f"not pairwise__{wildcards.pairing}"
            )
        inputs["pairwise"] = pairwise_annotation_file()
    return inputs


def pairs_flags(wildcards) -> str:
    """Flags of `solireward pairs` for one task / label source / pairing strategy."""
    options = {"task": wildcards.task, "strategy": wildcards.pairing, **config["pairs"]}
    if wildcards.labels == "pairwise":
        options["pairwise_annotations"] = pairwise_annotation_file()
        if config["data"]["video_root"] and config["data"]["pairwise_format"] != "videoalign":
            options["video_root"] = config["data"]["video_root"]
    return cli_flags(options)


# --------------------------------------------------------------------------------------------
# Grid cells


def cell_config(wildcards) -> dict:
    """The resolved training config of one cell: recipe < train < pairings.* < label_sources.* < head < loss.

    With binary labels the cell's pairing strategy sets `pair_groups` (in-batch pairs across prompts or
    within one); pairwise labels train on the annotated pairs as written (`pairing: explicit`). The config's
    `pairings.<name>` and `label_sources.<name>` mappings add or override train flags.
    """
    resolved = {"model_type": config["backbone"]["model_type"], "reward_task": wildcards.task}
    resolved.update(TRAIN_RECIPE)
    resolved.update(config["train"])
    if wildcards.labels == "pairwise":
        resolved["pairing"] = "explicit"
        resolved.pop("pair_groups", None)
    else:
        resolved["pair_groups"] = wildcards.pairing
    resolved.update(config["pairings"][wildcards.pairing])
    resolved.update(config["label_sources"][wildcards.labels])
    resolved.update(config["heads"][wildcards.head])
    resolved.update(config["losses"][wildcards.loss])
    if wildcards.replicate:
        resolved["seed"] += replicate_index(wildcards.replicate)
    return resolved


def replicate_index(replicate: str) -> int:
    """0 for the first training of a cell (""), r for "__rep<r>"."""
    return int(replicate.removeprefix("__rep")) if replicate else 0


def cell_config_yaml(wildcards) -> str:
    """The cell's training config as YAML text (a rule param, so a change reruns that cell)."""
    header = (
        f"# solireward train --config THIS_FILE ... (cell {wildcards.task}/{wildcards.labels}__"
        f"{wildcards.pairing}/{wildcards.head}__{wildcards.loss}{wildcards.replicate} of study {STUDY})\n"
    )
    return header + yaml.safe_dump(cell_config(wildcards), sort_keys=False)


def cells() -> list[dict]:
    """Every trained cell of the study: the grid, then the ablations (the default cell once)."""
    grid = config["grid"]
    out = []
    for task in config["tasks"]:
        for head in grid["heads"]:
            for loss in grid["losses"]:
                out.append(
                    dict(task=task, labels=GRID_LABELS, pairing=GRID_PAIRING, head=head, loss=loss, group="grid")
                )
        default = dict(task=task, head=grid["default_head"], loss=grid["default_loss"])
        for pairing in config["ablations"]["pairing"]:
            out.append(dict(default, labels=GRID_LABELS, pairing=pairing, group="ablation_pairing"))
        for labels in config["ablations"]["labels"]:
            out.append(dict(default, labels=labels, pairing=LABEL_SOURCE_PAIRING[labels], group="ablation_labels"))
        for group in ("ablation_pairing", "ablation_labels"):
            if config["ablations"]["pairing"] if group == "ablation_pairing" else config["ablations"]["labels"]:
                # the ablation's reference cell (default head and loss on the grid data)
                out.append(dict(default, labels=GRID_LABELS, pairing=GRID_PAIRING, group=group))
    return out


def cell_files(pattern: str, group: str | None = None) -> list[str]:
    """`pattern` (a path under CELL) for each distinct cell and replicate, optionally of one group only."""
    seen = []
    for cell in cells():
        if group is not None and cell["group"] != group:
            continue
        for replicate in REPLICATES:
            path = pattern.format(**{k: v for k, v in cell.items() if k != "group"}, replicate=replicate)
            if path not in seen:
                seen.append(path)
    return seen


def study_config_yaml() -> str:
    """The validated study config (defaults filled in, `train` = the recipe with the study's overrides;
    resources left out: they do not change results)."""
    study = {key: value for key, value in config.items() if key != "resources"}
    study["train"] = {**TRAIN_RECIPE, **config["train"]}
    header = (
        f"# the study config that produced results/{STUDY}/ (schema defaults filled in; train: the "
        "train_recipe flags with the train overrides applied)\n"
    )
    return header + yaml.safe_dump(study, sort_keys=False)


def report_reference() -> list[str]:
    """The factors held fixed in each single-factor table of the report: the default cell."""
    grid = config["grid"]
    return [
        f"head={grid['default_head']}",
        f"loss={grid['default_loss']}",
        f"labels={GRID_LABELS}",
        f"pairing={GRID_PAIRING}",
    ]


def eval_tags(wildcards) -> str:
    """`--tag` arguments that identify a cell in the metrics file and the report."""
    tags = {
        "task": wildcards.task,
        "labels": wildcards.labels,
        "pairing": wildcards.pairing,
        "head": wildcards.head,
        "loss": wildcards.loss,
    }
    if config["replicates"] > 1:
        tags["replicate"] = replicate_index(wildcards.replicate)
    return " ".join(shlex.quote(f"{k}={v}") for k, v in tags.items())
