"""The Snakemake workflow catalog's standard: .snakemake-workflow-catalog.yml, config/README.md documenting
every key of workflow/schemas/config.schema.yaml (its tables are generated from the schema), and
`snakefmt --check` (beside `snakemake --lint` in test_workflow.py).

Regenerate the tables of config/README.md after a schema change: python tests/workflow/test_catalog.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from solireward.io import write_text

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG_README = REPO / "config" / "README.md"
BEGIN = "<!-- generated from workflow/schemas/config.schema.yaml by: python tests/workflow/test_catalog.py -->"
END = "<!-- end of the generated tables -->"
RESOURCES_REF = "#/$defs/resources"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "$ref" in node:
        return {"#/$defs/name": "name", "#/$defs/flags": "flags (mapping)", RESOURCES_REF: "resources"}[node["$ref"]]
    if "anyOf" in node:
        return " or ".join(_type(n) for n in node["anyOf"])
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if kinds == ["array"] and "items" in node:
        return f"list of {_type(node['items'])}"
    return " or ".join("null" if k == "null" else "mapping" if k == "object" else k for k in kinds)


def _rows(node: dict[str, Any], path: str, defs: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of `node` and the keys below it."""
    resolved = dict(node)
    ref = node.get("$ref")
    if ref and ref != RESOURCES_REF:
        resolved = {**defs[ref.rsplit("/", 1)[1]], **node}
    default = json.dumps(node["default"]) if "default" in node else ""
    text = resolved.get("description", "")
    if not text and ".<name>." in path:
        text = f"flag `--{path.rsplit('.', 1)[1]}` of `solireward train` (see `solireward train --help`)"
    elif not text and ref == RESOURCES_REF:
        leaf = path.rsplit(".", 1)[1]
        text = ("threads and resources of every rule not listed, and the keys a listed one leaves out"
                if leaf == "default" else f"threads and resources of the {leaf} jobs (over `resources.default`)")
    elif not text and "properties" in resolved:
        text = "the keys below"
    rows = [(path, _type(node), default, text)] if path else []
    if ref == RESOURCES_REF:
        return rows
    for name, child in resolved.get("properties", {}).items():
        rows += _rows(child, f"{path}.{name}" if path else name, defs)
    extra = resolved.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        rows += _rows({k: v for k, v in extra.items() if k != "description"}, f"{path}.<name>", defs)[1:]
    return rows


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {_cell(kind)} | {f'`{_cell(default)}`' if default else ''} | {_cell(text)} |"
              for key, kind, default, text in rows]
    return "\n".join(lines)


def generated_tables(schema: dict[str, Any]) -> str:
    """The key tables of config/README.md: every key of the schema, then the fields of one rule's resources."""
    defs = schema["$defs"]
    resources = defs["resources"]
    fields = [(f"resources.<rule>.{name}", _type(node), "", node.get("description", ""))
              for name, node in resources["properties"].items()]
    return "\n".join([BEGIN, "", "### Every key", "", _table(_rows(schema, "", defs)), "",
                      "### The resources of one rule (`resources.<rule>`)", "", _table(fields), "", END])


def _readme_section() -> str:
    text = CONFIG_README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{CONFIG_README}: the generated tables' markers are missing"
    return text[text.index(BEGIN):text.index(END) + len(END)]


def test_config_readme_documents_every_key_of_the_schema() -> None:
    expected = generated_tables(yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))
    assert _readme_section() == expected, ("config/README.md is out of date with the schema; regenerate it: "
                                           "python tests/workflow/test_catalog.py")


def test_catalog_file_declares_usage_software_stack_and_report() -> None:
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text(encoding="utf-8"))
    usage = catalog["usage"]
    assert usage["mandatory-flags"]["desc"].strip() and usage["mandatory-flags"]["flags"].strip()
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert (REPO / "workflow" / "Snakefile").is_file() and CONFIG_README.is_file()


def test_snakefmt_check_is_clean() -> None:
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent)) or shutil.which("snakefmt")
    if snakefmt is None:
        pytest.fail("snakefmt is not installed: pip install -c constraints.txt -e '.[workflow]'")
    result = subprocess.run([snakefmt, "--check", "workflow"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"run: snakefmt workflow\n{result.stdout}{result.stderr}"


if __name__ == "__main__":
    text = CONFIG_README.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    tables = generated_tables(yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))
    write_text(CONFIG_README, text[:start] + tables + text[stop:])
    print(f"wrote {CONFIG_README.relative_to(REPO)}")
