"""The study design as data: its axes, its cells, the reference cell, and each cell's flags and paths.

A study config (``config/config.yaml``, checked by ``workflow/schemas/config.schema.yaml``) becomes a
:class:`Study`. The workflow (``workflow/rules/common.smk``) only wires rules to it, and ``solireward
report`` reads the same object back from the ``study_config.yaml`` the workflow writes, so the cells, their
order and the reference cell are decided here and nowhere else.

Vocabulary (one word per concept, the same in config keys, wildcards, tags, flags and table headers):

- ``label_source``: where a cell's training pairs come from: ``binary`` (single-item Pass/Fail labels),
  ``pairwise`` (annotated pairs of two videos of one prompt) or one of :data:`BIASED_SOURCES` (the demo's
  binary labels from annotators with a planted shortcut, e.g. ``biased`` toward bright videos,
  ``data.demo.shortcut_bias``: a label source that invites reward hacking, to test mitigations against).
- ``pairing``: which videos may form a pair: ``cross_prompt`` (the paper's method) or ``in_prompt``
  (both videos share a prompt, the baseline).
- ``head`` and ``loss``: names defined under the config's ``heads`` and ``losses``.
- ``mitigation``: ``none``, or a name defined under ``mitigations`` (train flags that resist shortcuts). A
  recipe with ``fine_tune_on: trusted`` (:data:`FINE_TUNE`) instead continues its twin's trained model on the
  training pairs of the trusted labels (:data:`TRUSTED_SOURCE`: an expert's labels of a few training prompts,
  ``data.demo.trusted_share`` or ``data.trusted_annotations``), with its other flags.

A cell is one value of each axis (:data:`AXES`) and one replicate. The grid crosses heads and losses (or,
with ``grid.crossed: false``, varies each alone around the default head and loss) at the reference data
(binary labels, cross-prompt pairs); each ablation changes one data axis of the reference cell; each
mitigation trains the reference cell of every binary label source (``binary``, and ``biased`` when the
study has it) with that mitigation, beside its twin without. A `selection` chooses a mitigation among
candidates on the validation split with some label sources' cells; its `held_out` label sources (cues
that took no part in the choice) then train with the chosen recipe (:meth:`Study.chosen_cells`). Adding
an axis means adding it to :data:`AXES`, :data:`CELL_PATTERN`, :class:`Cell` and :meth:`Study.grouped_cells`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import yaml

from solireward.errors import ConfigError

PAIRINGS = ("cross_prompt", "in_prompt")
# the demo's planted-shortcut label sources, one per cue of data.synthetic.plan.CUES, and the data.demo key
# that plants each (its bias)
BIASED_SOURCES = {"biased": "shortcut_bias", "biased_size": "size_bias", "biased_background": "background_bias",
                  "biased_overlay": "overlay_bias", "biased_tint": "tint_bias",
                  "biased_grain": "grain_bias", "biased_letterbox": "letterbox_bias",
                  "biased_saturation": "saturation_bias", "biased_vignette": "vignette_bias"}
LABEL_SOURCES = ("binary", "pairwise", *BIASED_SOURCES)
BINARY_SOURCES = ("binary", *BIASED_SOURCES)  # single-item labels: paired inside each batch, and mitigated
# pairwise annotations compare two videos of one prompt: that label source fixes the pairing
FIXED_PAIRING = {"pairwise": "in_prompt"}
TRUSTED_SOURCE = "trusted"  # trusted labels of some training prompts: never a cell's data, only fine-tuned on
PAIR_SOURCES = (*LABEL_SOURCES, TRUSTED_SOURCE)  # every label source with pair files
FINE_TUNE = "fine_tune_on"  # a recipe key: continue the twin's model on this label source's training pairs
AXES = ("task", "label_source", "pairing", "head", "loss", "mitigation")  # the order of paths, tags and rows
NO_MITIGATION = "none"
FACTORS = AXES[1:]  # the axes a table compares (the task is a leading column, never a factor)
# the data of the grid and of every ablation's reference cell
REFERENCE_DATA = {"label_source": "binary", "pairing": "cross_prompt"}
# a cell's folder under results/<study>/models/; `mitigation` is "" (none) or "__<name>", `replicate` "" or
# "__rep<r>", so the cells without either keep the paths they always had
CELL_PATTERN = "{task}/{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"
REPLICATE = "replicate"  # the tag that numbers the trainings of one cell (different seeds)
GROUPS = ("grid", "ablation_pairing", "ablation_label_source", "ablation_mitigation")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One trained reward model of a study: a value of each axis and a replicate number (0 = first)."""

    task: str
    label_source: str
    pairing: str
    head: str
    loss: str
    mitigation: str = NO_MITIGATION
    replicate: int = 0

    @property
    def replicate_suffix(self) -> str:
        """"" for the first training of a cell, "__rep<r>" for the r-th repeat."""
        return f"__rep{self.replicate}" if self.replicate else ""

    def wildcards(self) -> dict[str, str]:
        """The values of :data:`CELL_PATTERN`'s wildcards."""
        suffix = "" if self.mitigation == NO_MITIGATION else f"__{self.mitigation}"
        return {**self.axes(), "mitigation": suffix, "replicate": self.replicate_suffix}

    @property
    def path(self) -> str:
        """The cell's folder relative to results/<study>/models/."""
        return CELL_PATTERN.format(**self.wildcards())

    def axes(self) -> dict[str, str]:
        """The cell's value of each axis, in :data:`AXES` order."""
        return {axis: getattr(self, axis) for axis in AXES}

    def tags(self, with_replicate: bool) -> dict[str, str]:
        """The `--tag` values that name the cell in metrics, probe and over-optimisation files."""
        tags = self.axes()
        if with_replicate:
            tags[REPLICATE] = str(self.replicate)
        return tags

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> "Cell":
        """The cell named by a rule's wildcards (``replicate`` as in :data:`CELL_PATTERN`)."""
        replicate = str(getattr(wildcards, "replicate", "") or "")
        mitigation = str(getattr(wildcards, "mitigation", "") or "").removeprefix("__")
        return cls(**{axis: getattr(wildcards, axis) for axis in AXES if axis != "mitigation"},
                   mitigation=mitigation or NO_MITIGATION,
                   replicate=int(replicate.removeprefix("__rep")) if replicate else 0)


def data_of(label_source: str, pairing: str) -> str:
    """The pair folder name of a label source and a pairing (``binary__cross_prompt``)."""
    return f"{label_source}__{pairing}"


def check_data(label_source: str, pairing: str) -> None:
    """A label source that fixes its pairing (pairwise -> in_prompt) given another is a ConfigError."""
    fixed = FIXED_PAIRING.get(label_source)
    if fixed is not None and pairing != fixed:
        raise ConfigError(f"{label_source} labels give {fixed} pairs; ask for {data_of(label_source, fixed)}, "
                          f"not {data_of(label_source, pairing)}", field="pairing")


def load_train_recipe(name: str | None, repo: str | Path) -> dict[str, Any]:
    """The flags of a study's `train_recipe` file ({} when it is null); a relative path is read from `repo`."""
    if name is None:
        return {}
    path = Path(repo, name)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", field="train_recipe") from None
    if recipe is None:
        return {}
    if not isinstance(recipe, dict) or not all(isinstance(k, str) for k in recipe):
        raise ConfigError(f"{path} must hold a mapping of `solireward train` flags", field="train_recipe")
    return recipe


class Study:
    """A validated study config as its cells, reference cells and per-cell options.

    `config` is the schema-validated study config (defaults filled in); `recipe` the flags of its
    `train_recipe` file, under the config's `train` overrides.
    """

    def __init__(self, config: dict[str, Any], recipe: dict[str, Any] | None = None) -> None:
        self.config = config
        self.name: str = config["study"]
        self.train = {**(recipe or {}), **config["train"]}
        self.replicates: int = config["replicates"]
        self.claim_replicates: int = max(config.get("claim_replicates", 1), self.replicates)
        self.reference_replicates: int = max(config.get("reference_replicates", 1), self.claim_replicates)
        self.check()

    @classmethod
    def from_config_file(cls, path: str | Path) -> "Study":
        """The study of a ``study_config.yaml`` written by the workflow (its `train` already holds the recipe)."""
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the study config: {exc}", file=str(path)) from None
        keys = ("study", "tasks", "grid", "ablations", "train", "replicates")
        if not isinstance(config, dict) or any(k not in config for k in keys):
            raise ConfigError(f"expected a study config with the keys {', '.join(keys)} (the study_config.yaml "
                              "the workflow writes)", file=str(path))
        return cls(config)

    # ------------------------------------------------------------------------------------------
    # Checks the schema cannot express

    def check(self) -> None:
        """Cross-key checks of the config; each failure names the key."""
        config, grid = self.config, self.config["grid"]
        for key, names, section in (("grid.heads", grid["heads"], "heads"), ("grid.losses", grid["losses"], "losses"),
                                    ("grid.default_head", [grid["default_head"]], "heads"),
                                    ("grid.default_loss", [grid["default_loss"]], "losses")):
            missing = [n for n in names if n not in config[section]]
            if missing:
                raise ConfigError(f"{', '.join(missing)} is not defined under '{section}' "
                                  f"(defined: {', '.join(config[section])})", field=key)
        ablations = config["ablations"]
        unknown = [m for m in ablations["mitigation"] if m not in config["mitigations"]]
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} is not defined under 'mitigations' (defined: "
                              f"{', '.join(config['mitigations']) or 'none'})", field="ablations.mitigation")
        reserved = [m for m in config["mitigations"] if m == NO_MITIGATION or m.startswith("rep")]
        if reserved:
            raise ConfigError(f"'{reserved[0]}' is reserved (no mitigation, or a replicate's path)",
                              field="mitigations")
        data = config["data"]
        selection = config.get("selection") or {}
        for field, sources in (("ablations.label_source", ablations["label_source"]),
                               ("selection.label_sources", selection.get("label_sources", [])),
                               ("selection.held_out", selection.get("held_out", []))):
            for source, bias in BIASED_SOURCES.items():
                if source in sources and not (data["demo"] or {}).get(bias, 0):
                    raise ConfigError(f"'{source}' labels come from the demo's planted shortcut: set "
                                      f"data.demo.{bias} > 0 (with its nuisance's share > 0)", field=field)
        if data["demo"] is None and not data["annotations"]:
            raise ConfigError("give data.demo (generated data) or data.annotations (real files)", field="data")
        if data["demo"] is None and "pairwise" in ablations["label_source"] \
                and not data["pairwise_annotations"]:
            raise ConfigError("'pairwise' needs data.pairwise_annotations", field="ablations.label_source")
        if config["backbone"]["path"] is None and data["demo"] is None:
            raise ConfigError("a real study needs a backbone checkpoint folder", field="backbone.path")
        if self.reference_replicates > 1 and "seed" not in self.train:
            field = next(key for key, count in (("replicates", self.replicates),
                                                ("claim_replicates", self.claim_replicates),
                                                ("reference_replicates", self.reference_replicates)) if count > 1)
            raise ConfigError("give train.seed (or a seed in the train_recipe); replicate r trains with that "
                              "seed + r", field=field)
        unknown = [m for m in selection.get("candidates", []) if m not in config["mitigations"]]
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} is not defined under 'mitigations'", field="selection.candidates")
        used = set(ablations["mitigation"]) | set(selection.get("candidates", []))
        for name, recipe in config["mitigations"].items():
            source = recipe.get(FINE_TUNE)
            if source is not None and source != TRUSTED_SOURCE:
                raise ConfigError(f"expected {TRUSTED_SOURCE!r}, got {source!r}",
                                  field=f"mitigations.{name}.{FINE_TUNE}")
            # a recipe no cell trains may sit unused, as config.yaml's `robust` does in studies that leave it out
            if source is not None and name in used and not self.demo_writes_trusted_labels() \
                    and not data.get("trusted_annotations"):
                raise ConfigError("fine-tuning on trusted labels needs them: set data.demo.trusted_share > 0 or give "
                                  "data.trusted_annotations", field=f"mitigations.{name}.{FINE_TUNE}")
        both = [s for s in self.held_out if s in self.choosing_sources()]
        if both:
            raise ConfigError(f"{', '.join(both)} also chooses the recipe (selection.label_sources): a held-out cue "
                              "must take no part in the choice", field="selection.held_out")
        if config.get("overopt") is not None and data["demo"] is None:
            raise ConfigError("the over-optimisation grid is rendered by the demo generator (data.demo); set "
                              "overopt: null for a study on real data", field="overopt")
        demo, pairs = data["demo"] or {}, config["pairs"]
        if any(demo.get(bias, 0) for bias in BIASED_SOURCES.values()) and (
                list(demo.get("shortcut_split", [0.8, 0.1, 0.1])) != list(pairs.get("split", [0.8, 0.1, 0.1]))
                or demo.get("shortcut_seed", 0) != pairs.get("seed", 0)):
            raise ConfigError("the planted shortcut must follow the train split of `solireward pairs`: give the "
                              "values of pairs.split and pairs.seed", field="data.demo.shortcut_split")

    # ------------------------------------------------------------------------------------------
    # Cells

    def reference(self, task: str) -> Cell:
        """The reference cell of a task: default head and loss on the reference data."""
        grid = self.config["grid"]
        return Cell(task=task, head=grid["default_head"], loss=grid["default_loss"], **REFERENCE_DATA)

    def reference_tags(self) -> dict[str, str]:
        """The value of each factor held fixed while a table varies another (the reference cell's)."""
        first = self.reference(self.config["tasks"][0])
        return {factor: getattr(first, factor) for factor in FACTORS}

    def mitigated_sources(self) -> list[str]:
        """The label sources whose reference cell is trained with each mitigation: binary, and each biased one."""
        return [s for s in BINARY_SOURCES if s == REFERENCE_DATA["label_source"]
                or s in self.config["ablations"]["label_source"]]

    def grid_pairs(self) -> list[tuple[str, str]]:
        """The (head, loss) of each grid cell: every pair when `grid.crossed`, else the row and the column
        through the default head and loss."""
        grid = self.config["grid"]
        if grid.get("crossed", True):
            return [(head, loss) for head in grid["heads"] for loss in grid["losses"]]
        return list(dict.fromkeys([(head, grid["default_loss"]) for head in grid["heads"]]
                                  + [(grid["default_head"], loss) for loss in grid["losses"]]))

    def grouped_cells(self) -> Iterator[tuple[str, Cell]]:
        """(group, cell) of every first replicate: the grid, then each ablation with its reference cell(s)."""
        ablations = self.config["ablations"]
        for task in self.config["tasks"]:
            for head, loss in self.grid_pairs():
                yield "grid", Cell(task=task, head=head, loss=loss, **REFERENCE_DATA)
            reference = self.reference(task)
            for pairing in ablations["pairing"]:
                yield "ablation_pairing", dataclasses.replace(reference, pairing=pairing)
            for source in ablations["label_source"]:
                yield "ablation_label_source", dataclasses.replace(
                    reference, label_source=source, pairing=FIXED_PAIRING.get(source, reference.pairing))
            for group, values in (("ablation_pairing", ablations["pairing"]),
                                  ("ablation_label_source", ablations["label_source"])):
                if values:
                    yield group, reference
            if ablations["mitigation"]:
                for source in self.mitigated_sources():
                    unmitigated = dataclasses.replace(reference, label_source=source)
                    for mitigation in ablations["mitigation"]:
                        yield "ablation_mitigation", dataclasses.replace(unmitigated, mitigation=mitigation)
                    yield "ablation_mitigation", unmitigated

    def cells(self, group: str | None = None) -> list[Cell]:
        """Every distinct cell and replicate (of one group when given), in study order."""
        if group is not None and group not in GROUPS:
            raise ConfigError(f"unknown group '{group}'; groups: {', '.join(GROUPS)}", field="group")
        out: list[Cell] = []
        for cell_group, cell in self.grouped_cells():
            if group is not None and cell_group != group:
                continue
            for replicate in range(self.replicates_of(cell)):
                candidate = dataclasses.replace(cell, replicate=replicate)
                if candidate not in out:
                    out.append(candidate)
        return out

    def claim_cells(self) -> list[Cell]:
        """The first replicates of the cells a claim of the report rests on: each task's reference cell (every
        table compares with it) and every cell of the mitigation ablation (each mitigated cell and its twin)."""
        out = [self.reference(task) for task in self.config["tasks"]]
        out += [cell for group, cell in self.grouped_cells() if group == "ablation_mitigation" and cell not in out]
        return out

    @property
    def held_out(self) -> list[str]:
        """The label sources held out of the validation-split choice (config `selection.held_out`)."""
        return list((self.config.get("selection") or {}).get("held_out", []))

    def choosing_sources(self) -> list[str]:
        """The label sources whose cells choose the recipe on the validation split ([] without a selection)."""
        selection = self.config.get("selection")
        return list(selection.get("label_sources", BINARY_SOURCES)) if selection else []

    def planted_sources(self) -> list[str]:
        """Every planted-shortcut label source a cell of the study trains on (ablation, choice or held out)."""
        used = [*self.config["ablations"]["label_source"], *self.choosing_sources(), *self.held_out]
        return [s for s in BIASED_SOURCES if s in used]

    def demo_writes_trusted_labels(self) -> bool:
        """Whether the demo data set has an expert's labels of some training prompts (``data.demo.trusted_share``)."""
        return bool((self.config["data"]["demo"] or {}).get("trusted_share", 0))

    def audited_sources(self) -> list[str]:
        """The label sources `snakemake label_audit` audits: the clean one and every planted one a cell trains on."""
        planted = self.planted_sources()
        return [s for s in BINARY_SOURCES if s == REFERENCE_DATA["label_source"] or s in planted]

    def chosen_cells(self, chosen: str) -> list[Cell]:
        """With held-out cues (`selection.held_out`): the recipe `chosen` on the validation split, on the reference
        cell of each choosing and each held-out label source beside its twin, `claim_replicates` seeds each, all
        scored once on the test split ([] without held-out cues). The choosing sources' models are the choice's
        own trainings; the held-out ones train here, after the choice."""
        sources = [*self.choosing_sources(), *self.held_out] if self.held_out else []
        return self._replicated([dataclasses.replace(self.reference(task), label_source=source, mitigation=mitigation)
                                 for task in self.config["tasks"] for source in sources
                                 for mitigation in (chosen, NO_MITIGATION)])

    def _replicated(self, firsts: list[Cell]) -> list[Cell]:
        """Each cell with `claim_replicates` seeds (a reference cell `reference_replicates`), each once, in order."""
        out: list[Cell] = []
        for cell in firsts:
            count = self.reference_replicates if self.is_reference(cell) else self.claim_replicates
            out += [c for r in range(count) if (c := dataclasses.replace(cell, replicate=r)) not in out]
        return out

    def selection_cells(self) -> list[Cell]:
        """Every training of the validation-split choice (config `selection`): each task's reference cell, and
        each candidate mitigation on the reference cell of each listed label source beside its twin, with
        `claim_replicates` seeds; [] without a selection."""
        selection = self.config.get("selection")
        if not selection:
            return []
        firsts: list[Cell] = []
        for task in self.config["tasks"]:
            reference = self.reference(task)
            firsts.append(reference)
            for source in self.choosing_sources():
                twin = dataclasses.replace(reference, label_source=source)
                firsts += [dataclasses.replace(twin, mitigation=m) for m in selection["candidates"]] + [twin]
        return self._replicated(firsts)

    def replicates_of(self, cell: Cell) -> int:
        """How many trainings (seeds) a cell gets: `reference_replicates` for a task's reference cell,
        `claim_replicates` for the other :meth:`claim_cells`, else `replicates`."""
        if self.is_reference(cell):
            return self.reference_replicates
        first = dataclasses.replace(cell, replicate=0)
        return self.claim_replicates if first in self.claim_cells() else self.replicates

    def is_reference(self, cell: Cell) -> bool:
        """Whether `cell` (any replicate) is its task's reference cell."""
        return dataclasses.replace(cell, replicate=0) == self.reference(cell.task)

    def order(self, tags: dict[str, str]) -> tuple[int, int]:
        """Sort key of a result by its tags: the study order of its cell (unknown cells last), then replicate."""
        known: dict[tuple[str, ...], int] = {}
        for _, cell in self.grouped_cells():
            known.setdefault(tuple(cell.axes().values()), len(known))
        key = tuple(str(tags.get(axis, NO_MITIGATION if axis == "mitigation" else "")) for axis in AXES)
        return known.get(key, len(known)), int(tags.get(REPLICATE, 0) or 0)

    # ------------------------------------------------------------------------------------------
    # Per-cell options

    def seed(self, cell: Cell) -> int | None:
        """The training seed of a cell: the study's seed + the replicate number."""
        seed = self.train.get("seed")
        return None if seed is None else seed + cell.replicate

    def train_options(self, cell: Cell) -> dict[str, Any]:
        """The resolved `solireward train` flags of a cell: recipe < train < pairings.* < label_sources.* <
        head < loss < mitigation.

        Binary (and biased) labels are paired inside each batch (``batching: in_batch``) across prompts or
        within one (``pairing``); pairwise labels train on the annotated pairs as written (``batching:
        pairs_file``).
        """
        config = self.config
        check_data(cell.label_source, cell.pairing)
        resolved: dict[str, Any] = {"model_type": config["backbone"]["model_type"], "reward_task": cell.task}
        resolved.update(self.train)
        if cell.label_source in BINARY_SOURCES:
            resolved["pairing"] = cell.pairing
        else:
            resolved["batching"] = "pairs_file"
            resolved.pop("pairing", None)
        resolved.update(config["pairings"][cell.pairing])
        resolved.update(config["label_sources"][cell.label_source])
        resolved.update(config["heads"][cell.head])
        resolved.update(config["losses"][cell.loss])
        if cell.mitigation != NO_MITIGATION:
            resolved.update(config["mitigations"][cell.mitigation])
            resolved.pop(FINE_TUNE, None)   # where the training starts and what it reads: the workflow's inputs
        if cell.replicate:
            resolved["seed"] = self.seed(cell)
        return resolved

    def train_options_yaml(self, cell: Cell) -> str:
        """The cell's training flags as the YAML of its train_config.yaml (a file `solireward train --config`
        reads)."""
        header = f"# solireward train --config THIS_FILE ... (cell {cell.path} of study {self.name})\n"
        return header + yaml.safe_dump(self.train_options(cell), sort_keys=False)

    def pairs_options(self, task: str, label_source: str, pairing: str) -> dict[str, Any]:
        """Flags of `solireward pairs` for one task, label source and pairing (without the input files); the
        trusted labels are of training prompts only, so all their pairs are training pairs."""
        check_data(label_source, pairing)
        options = {"task": task, "pairing": pairing, **self.config["pairs"]}
        if label_source == TRUSTED_SOURCE:
            options["split"] = [1.0, 0.0, 0.0]
        return options

    def fine_tune_source(self, cell: Cell) -> str | None:
        """The label source whose training pairs the cell's recipe fine-tunes its twin's model on, or None."""
        if cell.mitigation == NO_MITIGATION:
            return None
        return self.config["mitigations"][cell.mitigation].get(FINE_TUNE)

    def tags(self, cell: Cell) -> dict[str, str]:
        """The tags of a cell's result files (the replicate only in a study with replicated cells)."""
        return cell.tags(self.reference_replicates > 1)

    def config_yaml(self) -> str:
        """The study config as run (schema defaults filled in; `train` = the recipe with the study's overrides;
        resources left out: they do not change results)."""
        study = {key: value for key, value in self.config.items() if key != "resources"}
        study["train"] = self.train
        header = (f"# the study config that produced results/{self.name}/ (schema defaults filled in; train: the "
                  "train_recipe flags with the train overrides applied)\n")
        return header + yaml.safe_dump(study, sort_keys=False)
