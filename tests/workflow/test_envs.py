"""The conda envs agree with pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _pip_section(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, f"{path}: expected one pip section"
    return sections[0]


def test_rule_env_holds_the_package_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["deepspeed"])
    assert sorted(_pip_section(REPO / "envs" / "solireward.yaml")) == sorted(wanted)


def test_every_rule_has_an_existing_conda_env() -> None:
    rules_seen = 0
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = [line.strip() for line in rules.read_text().splitlines()]
        n_rules = sum(line.startswith(("rule ", "checkpoint ")) for line in lines)
        envs = [lines[i + 1].strip('"') for i, line in enumerate(lines) if line == "conda:"]
        assert len(envs) == n_rules, f"{rules.name}: {n_rules} rules, {len(envs)} conda directives"
        assert all((rules.parent / env).resolve() == REPO / "envs" / "solireward.yaml" for env in envs)
        rules_seen += n_rules
    assert rules_seen >= 9


def test_root_environment_installs_the_package_with_its_extras() -> None:
    pip = _pip_section(REPO / "environment.yml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    editable = [p for p in pip if p.startswith("-e .[")]
    assert editable, pip
    extras = editable[0][len("-e .["):-1].split(",")
    assert set(extras) <= set(project["optional-dependencies"]) and "workflow" in extras
