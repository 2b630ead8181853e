"""The `solireward` command: one module per subcommand, named like it and like its Snakemake rule;
no argparse in the library; `solireward --help` stays light."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from solireward.cli import COMMANDS, command_module, main

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "solireward"
COMMANDS_DIR = PACKAGE / "commands"


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_command_layer_imports_argparse() -> None:
    library = [p for p in PACKAGE.rglob("*.py") if COMMANDS_DIR not in p.parents and p != PACKAGE / "cli.py"]
    assert library
    offenders = [str(p.relative_to(REPO)) for p in library if "argparse" in _imports(p)]
    assert offenders == [], f"library modules importing argparse: {offenders}"


def test_library_modules_have_no_command_entry_points() -> None:
    library = [p for p in PACKAGE.rglob("*.py") if COMMANDS_DIR not in p.parents and p != PACKAGE / "cli.py"]
    for path in library:
        functions = {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                     if isinstance(node, ast.FunctionDef)}
        assert not functions & {"configure_parser", "run"}, f"{path.relative_to(REPO)} defines a command entry point"


def test_every_subcommand_has_its_module_and_every_module_is_a_subcommand() -> None:
    modules = {p.stem for p in COMMANDS_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert modules == {name.replace("-", "_") for name in COMMANDS}
    for name in COMMANDS:
        assert command_module(name) == f"solireward.commands.{name.replace('-', '_')}"
        tree = ast.parse((COMMANDS_DIR / f"{name.replace('-', '_')}.py").read_text(encoding="utf-8"))
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert {"configure_parser", "run"} <= functions, name
        assert ast.get_docstring(tree), f"{name}: the module docstring is the summary in `solireward --help`"


def _rules_running_commands() -> list[tuple[str, str, str]]:
    """(file, rule, subcommand) for each rule of workflow/rules/*.smk whose shell runs `solireward.cli X`,
    directly or through a launcher script named by a `<NAME>_SCRIPT` constant (workflow/scripts/<name>.sh), or
    `--then X` joined to it by the helper that builds its `{params.lab}` (common.smk)."""
    found = []
    joined = re.findall(r"--then ([a-z][a-z_-]*)", (REPO / "workflow" / "rules" / "common.smk").read_text())
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?:rule|checkpoint) (\w+):\n", smk.read_text(encoding="utf-8"), flags=re.M)
        for rule, body in zip(blocks[1::2], blocks[2::2]):
            for name in re.findall(r"\b([A-Z]+)_SCRIPT\b", body):
                body += (REPO / "workflow" / "scripts" / f"{name.lower()}.sh").read_text(encoding="utf-8")
            for command in re.findall(r"solireward\.cli ([a-z][a-z_-]*)", body):
                found.append((smk.name, rule, command))
            if "{params.lab}" in body:
                found += [(smk.name, rule, command) for command in joined]
    return found


def test_rules_are_named_like_the_command_they_run() -> None:
    found = _rules_running_commands()
    own_rules = {rule for _, rule, command in found if rule == command.replace("-", "_")}
    # a rule runs every command whose README row names one; the others (`serve`, a service) say "—"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    no_rule = set(re.findall(r"^\| `solireward ([\w-]+)` \| .* \| — \|$", readme, re.M))
    assert "serve" in no_rule
    assert {command for _, _, command in found} == set(COMMANDS) - no_rule
    # the README row's rule column names every rule that runs the command, the first named like it, but for a
    # command that only runs joined to another one's (`--then`): its rule is named like that one
    named = {command: re.findall(r"`(\w+)`", rules) for command, rules in
             re.findall(r"^\| `solireward ([\w-]+)` \| .* \| ([^|]*`[^|]*) \|$", readme, re.M)}
    for smk, rule, command in found:
        first = named[command][0]
        assert first == command.replace("-", "_") or first in own_rules, f"README names rule {first} first"
        assert rule in named[command], f"{smk}: rule {rule} runs `solireward {command}`, README names {named[command]}"


def test_top_level_help_does_not_import_torch() -> None:
    code = ("import contextlib, io, json, sys\n"
            "from solireward.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'help': out.getvalue()}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert not result["torch"]
    for name in COMMANDS:
        assert name in result["help"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: solireward {command}") and "--config" in out


def test_a_bad_boolean_flag_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["labels", "--input", "a.csv", "--output", "t.jsonl", "--check_videos", "maybe"])
    assert info.value.code == 2
    assert "argument --check_videos: expected true or false, got 'maybe'" in capsys.readouterr().err


def test_an_option_check_names_the_source_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "labels.yaml"
    config.write_text("min_agreement: 1.5\n")
    assert main(["labels", "--config", str(config), "--input", "a.csv", "--output", "t.jsonl"]) == 2
    err = capsys.readouterr().err
    assert f"{config} / command line, field 'min_agreement': expected a share between 0 and 1" in err


def test_the_readme_stage_table_lists_every_command() -> None:
    """README.md's table of stages names each subcommand once, and its rule where there is one: named like it,
    or like the command it runs joined to (`--then`)."""
    from solireward.cli import COMMANDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `solireward ([\w-]+)` \| (.*) \| (`\w+`(?:, `\w+`)*|—) \|$", readme, re.M)
    assert sorted(name for name, _, _ in rows) == sorted(COMMANDS)
    for name, summary, rules in rows:
        first = rules.split(",")[0].strip("`")
        assert rules == "—" or first == name.replace("-", "_") or f"`{first}`'s job, `--then {name}`" in summary, name
