# The rounds of the labelling loop (rules/active.smk): their paths and the functions that turn the plan
# (solireward.active.rounds.RoundsPlan, config key `active`) into inputs, flags and the report's manifest.

from functools import cache
from types import SimpleNamespace

import yaml

from solireward.active.rounds import CONTROL, SCORED, RoundsPlan  # noqa: E402
from solireward.study import REFERENCE_DATA as _REFERENCE_DATA  # noqa: E402

ACTIVE = f"{R}/active"
ACT = f"{ACTIVE}/{{task}}"
ROUND = f"{ACT}/{{strategy}}/seed{{seed}}/round{{round}}"
RUN = f"{ACT}/{{run}}"  # a model's folder: round0/seed<s>, or <strategy>/seed<s>/round<r>
RUN_LOG = f"{LOGS}/active/{{task}}/{{run}}"
ROUND_LOG = f"{LOGS}/active/{{task}}/{{strategy}}/seed{{seed}}/round{{round}}"


@cache
def rounds_plan() -> RoundsPlan:
    """The plan of config `active` (a WorkflowError naming the key when it is unset or wrong)."""
    try:
        return RoundsPlan.from_study(DESIGN)
    except ConfigError as exc:
        raise WorkflowError(f"config key {exc.field}: {exc.reason}" if exc.field else str(exc)) from None


def cell_pairs(wildcards) -> str:
    """The pair folder of the rounds' cell (clean binary labels at its pairing): the study's split."""
    return f"{R}/pairs/{wildcards.task}/{data_of(_REFERENCE_DATA['label_source'], rounds_plan().cell.pairing)}"


def held_out_files(wildcards) -> list[str]:
    """The study's test and validation files of the cell's pairs: no pool prompt may be one of theirs."""
    return [
        f"{cell_pairs(wildcards)}/{name}" for name in ("test.json", "val.json", "videos_test.json", "videos_val.json")
    ]


def base_dir(task: str, seed: int) -> str:
    """Round 0 of a seed: the study's training of the cell where it has one, else the rounds' own."""
    cell = rounds_plan().base_cell(seed, DESIGN)
    return f"{R}/models/{cell.path}" if cell is not None else f"{ACTIVE}/{task}/round0/seed{seed}"


def run_dir(task: str, strategy: str | None, seed: int, round_: int) -> str:
    """The folder of the model of a strategy, seed and round (round 0: :func:`base_dir`)."""
    return base_dir(task, seed) if round_ == 0 else f"{ACTIVE}/{task}/{strategy}/seed{seed}/round{round_}"


def parse_run(run: str) -> tuple[str | None, int, int]:
    """(strategy or None, seed, round) of a {run} wildcard."""
    parts = run.split("/")
    if parts[0] == "round0":
        return None, int(parts[1].removeprefix("seed")), 0
    return parts[0], int(parts[1].removeprefix("seed")), int(parts[2].removeprefix("round"))


def model_before(task: str, strategy: str | None, seed: int, round_: int) -> str:
    """The model of the round before `round_` of a strategy and seed (round 1: round 0's)."""
    return f"{run_dir(task, strategy, seed, round_ - 1)}/model"


def previous_model(wildcards) -> str:
    """The model of the round before: the one whose scores of the pool the round selects by."""
    return model_before(wildcards.task, wildcards.strategy, int(wildcards.seed), int(wildcards.round))


def initial_model(wildcards) -> str:
    """What a round's training starts from: the backbone, or with `active.warm_start` the round before's model."""
    strategy, seed, round_ = parse_run(wildcards.run)
    if round_ >= 1 and rounds_plan().warm_start:
        return model_before(wildcards.task, strategy, seed, round_)
    return backbone_dir()


def answered(wildcards, through: int) -> list[str]:
    """The study's clean annotation files and the answers of this strategy and seed's rounds 1..`through`."""
    study = annotation_files(SimpleNamespace(biased=""))
    folder = f"{ACTIVE}/{wildcards.task}/{wildcards.strategy}/seed{wildcards.seed}"
    return [*study, *(f"{folder}/round{r}/answers.csv" for r in range(1, through + 1))]


def run_train_config(wildcards) -> str:
    """The training flags of a seed: the study's file of that replicate, else the rounds' own."""
    _, seed, _ = parse_run(wildcards.run)
    cell = rounds_plan().base_cell(seed, DESIGN)
    return f"{R}/models/{cell.path}/train_config.yaml" if cell else f"{ACT}/seed{seed}/train_config.yaml"


def run_pairs(wildcards) -> dict[str, str]:
    """The pairs a model trains on: the study's (round 0), or its round's merged labels' pairs."""
    strategy, seed, round_ = parse_run(wildcards.run)
    folder = cell_pairs(wildcards) if round_ == 0 else f"{run_dir(wildcards.task, strategy, seed, round_)}/pairs"
    return {"train": f"{folder}/train.json", "val": f"{folder}/val.json"}


def run_tags(wildcards) -> str:
    """`--tag` arguments of a model of the rounds: the cell's axes, seed, round and (after round 0) strategy."""
    strategy, seed, round_ = parse_run(wildcards.run)
    tags = {**rounds_plan().train_cell(seed, DESIGN).axes(), "seed": seed, "round": round_}
    if strategy is not None:
        tags["strategy"] = strategy
    return " ".join(shlex.quote(f"{k}={v}") for k, v in tags.items())


def round_entries() -> list[dict]:
    """Every model of the rounds: round 0 of each seed, then each strategy, seed and round, with its files."""
    plan = rounds_plan()
    task = plan.cell.task
    entries = [
        {"strategy": None, "seed": s, "round": 0, "dir": run_dir(task, None, s, 0), "batch": None} for s in plan.seeds
    ]
    for strategy in plan.strategies:
        for s in plan.seeds:
            for r in range(1, plan.rounds + 1):
                folder = run_dir(task, strategy, s, r)
                entries.append(
                    {"strategy": strategy, "seed": s, "round": r, "dir": folder, "batch": f"{folder}/batch/select.json"}
                )
    return entries


def report_inputs(kind: str) -> list[str]:
    """The files of one kind (metrics, overopt, batch) of every model of the rounds."""
    files = {"metrics": "metrics_test.json", "overopt": "overopt/overopt.json"}
    if kind == "batch":
        return [e["batch"] for e in round_entries() if e["batch"]]
    return [f"{e['dir']}/{files[kind]}" for e in round_entries()]


def manifest_text() -> str:
    """rounds.yaml: the cell and, per model, its strategy, seed, round and files (relative to the file)."""
    plan = rounds_plan()

    def rel(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(path, ACTIVE)

    models = [
        {
            "strategy": e["strategy"],
            "seed": e["seed"],
            "round": e["round"],
            "metrics": rel(f"{e['dir']}/metrics_test.json"),
            "overopt": rel(f"{e['dir']}/overopt/overopt.json"),
            "batch": rel(e["batch"]),
        }
        for e in round_entries()
    ]
    header = {
        "study": STUDY,
        "cell": plan.cell.axes(),
        "strategies": list(plan.strategies),
        "control": CONTROL,
        "rounds": plan.rounds,
        "batch": plan.batch,
        "seeds": list(plan.seeds),
        "pool_seed": plan.pool_seed,
    }
    listing = yaml.safe_dump({**header, "models": models}, sort_keys=False)
    return f"# the models of `snakemake active_rounds` (paths relative to this file)\n{listing}"


def simulated_annotators() -> dict:
    """Flags of `simulate-labels` that give the demo's annotators (data.demo's seed and noise)."""
    demo = config["data"]["demo"] or {}
    keys = {
        "seed": "demo_seed",
        "num_annotators": "num_annotators",
        "annotator_noise_min": "annotator_noise_min",
        "annotator_noise_max": "annotator_noise_max",
    }
    return {flag: demo[key] for key, flag in keys.items() if key in demo}
