"""Every choice list of the workflow's config schema mirrors the Python list that defines it, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from solireward.data.benchmarks import PAIRWISE_FORMATS
from solireward.data.pairing import TASK_DIMENSIONS
from solireward.losses import TIE_LOSSES
from solireward.models.families import FAMILIES
from solireward.models.heads import HEADS
from solireward.reporting.choice import CHOICE_RULES
from solireward.study import BIASED_SOURCES, BINARY_SOURCES, LABEL_SOURCES, PAIR_SOURCES, PAIRINGS, REFERENCE_DATA

WORKFLOW = Path(__file__).resolve().parents[2] / "workflow"
SCHEMA = yaml.safe_load((WORKFLOW / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
# schema path of each enum -> the Python list it mirrors
MIRRORS = {
    "backbone/model_type": list(FAMILIES),
    "tasks/items": list(TASK_DIMENSIONS),
    "heads/additionalProperties/reduce_sequence": list(HEADS),
    "losses/additionalProperties/tie_loss": list(TIE_LOSSES),
    "ablations/pairing/items": [s for s in PAIRINGS if s != REFERENCE_DATA["pairing"]],
    "ablations/label_source/items": [s for s in LABEL_SOURCES if s != REFERENCE_DATA["label_source"]],
    "data/pairwise_format": list(PAIRWISE_FORMATS),
    "selection/anyOf/label_sources/items": list(BINARY_SOURCES),
    "selection/anyOf/held_out/items": list(BIASED_SOURCES),
    "selection/anyOf/rule": list(CHOICE_RULES),
}


def _enums(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, list]]:
    """(path without the 'properties' steps, enum) of every enum in the schema."""
    if isinstance(node, dict):
        if "enum" in node:
            yield "/".join(path), node["enum"]
        for key, value in node.items():
            yield from _enums(value, path if key == "properties" else (*path, str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _enums(value, path)


def test_every_schema_enum_mirrors_its_python_list() -> None:
    enums = dict(_enums(SCHEMA))
    assert set(enums) == set(MIRRORS), "a schema enum without a Python list to mirror (or a stale entry here)"
    for path, values in enums.items():
        assert sorted(values) == sorted(MIRRORS[path]), path
        assert len(set(values)) == len(values), path


def test_wildcard_choices_mirror_the_python_lists() -> None:
    snakefile = (WORKFLOW / "Snakefile").read_text(encoding="utf-8")
    constraints = dict(re.findall(r'^\s+(\w+)=(.+),$', snakefile, re.M))
    assert constraints["pairing"] == '"|".join(PAIRINGS)'
    assert constraints["label_source"] == '"|".join(PAIR_SOURCES)'   # the label sources and the trusted labels
    assert set(LABEL_SOURCES) < set(PAIR_SOURCES)


def test_resources_are_keyed_by_rule_name() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (WORKFLOW / "rules").glob("*.smk"))
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M))
    keys = set(SCHEMA["properties"]["resources"]["properties"]) - {"default"}
    assert keys <= rules, f"resources of unknown rules: {sorted(keys - rules)}"
