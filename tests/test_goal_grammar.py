"""solireward.goal_grammar: light enough for every workflow start, and its check of what a study can measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from solireward.errors import ConfigError
from solireward.goal_grammar import check_measurable

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "torch", "solireward.reporting", "solireward.hacking")


def heavy_imports(module: str) -> list[str]:
    """The modules of HEAVY (or below them) that importing `module` loads, in a fresh interpreter."""
    code = (f"import sys, {module}; heavy = {HEAVY!r}; "
            "print(' '.join(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + '.' for h in heavy))"
            ")))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_the_grammar_loads_no_report_builder() -> None:
    """common.smk imports it on every Snakemake start and SLURM job: no pandas, scipy or solireward.reporting; the
    report's own goals module, which does load them, shows the check can fail."""
    assert heavy_imports("solireward.goal_grammar") == []
    assert {"pandas", "scipy", "solireward.reporting"} <= set(heavy_imports("solireward.reporting.goals"))


def test_what_the_workflow_imports_at_start_loads_no_pandas_or_scipy() -> None:
    """Every module the rule files import at parse time (read from them), together: no pandas, scipy, matplotlib,
    torch or report builder (the active rounds' plan loaded scipy and pandas through hacking.overopt before)."""
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    modules = sorted(set(re.findall(r"^from (solireward[\w.]*) import", rules, re.M)))
    assert "solireward.goal_grammar" in modules and "solireward.active.rounds" in modules
    loaded = {m.split(".")[0] if not m.startswith("solireward") else m for m in heavy_imports(", ".join(modules))}
    assert loaded.isdisjoint({"pandas", "scipy", "matplotlib", "torch", "solireward.reporting"}), loaded


def test_a_share_goal_alone_asks_for_the_grid_defaults() -> None:
    """The grid's defaults (a heavier import) are asked for a share goal only; an axis held at one value is refused."""
    asked = []

    def defaults() -> dict[str, list[float]]:
        asked.append(True)
        return {"scale": [1.0, 1.3], "overlay": [0.0]}

    check_measurable(["probe:tint=0.3", "gap:best_of_n=0.1", "cost=2"], "f", {}, {}, ["tint"], defaults)
    assert not asked
    check_measurable(["share:scale=0.1"], "f", None, {}, ["tint"], defaults)
    assert asked
    with pytest.raises(ConfigError, match=r"share:overlay would not be measured: the grid holds overlay at \[0.0\]"):
        check_measurable(["share:overlay=0.1"], "f", None, {}, ["tint"], defaults)
    with pytest.raises(ConfigError, match="share:hue: expected a nuisance axis of the grid"):
        check_measurable(["share:hue=0.1"], "f", None, {}, ["tint"], defaults)
