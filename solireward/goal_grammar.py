"""The grammar of a study's goals: their kinds, parsing, and whether the study can measure them.

Goals are ``report.mitigation_goals`` and ``selection.held_out_goals``. This module imports the standard library and
the base layer only, so the workflow checks goals at start without loading the report builder;
:mod:`solireward.reporting.goals` measures and judges them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from solireward.config import parse_key_values
from solireward.errors import ConfigError

GOAL_KINDS = {  # kind -> (what is measured, whether the measure must be at most (True) or at least the limit)
    "probe": ("each training's |mean score shift| under the probe perturbation, averaged (clean std)", True),
    "spearman": ("Spearman ρ of scores with and without the probe perturbation", False),
    "gap": ("hacking gap of the method at the largest KL the cell and its twin reach (base std)", True),
    "share": ("each training's |share − base share| of best-of-n's picks (its largest n), averaged, at the "
              "nuisance axis's most departed value", True),
    "below_reference": ("pair accuracy below the reference cell without mitigation (points)", True),
    "cost": ("pair accuracy below its own twin without mitigation (points)", True),
}
ACCURACY_GOALS = ("below_reference", "cost")
"""Goal kinds that measure pair accuracy (they take no name)."""


def parse_goals(items: Sequence[str]) -> list[tuple[str, str, float]]:
    """``KIND[:NAME]=LIMIT`` strings (KIND in :data:`GOAL_KINDS`) as (kind, name, limit); bad ones raise."""
    goals = []
    for key, value in parse_key_values(items, "mitigation_goals").items():
        kind, _, name = key.partition(":")
        if kind not in GOAL_KINDS or bool(name) == (kind in ACCURACY_GOALS):
            raise ConfigError("expected probe:NAME, spearman:NAME, gap:METHOD, share:AXIS, below_reference or cost, "
                              f"got {key!r}", field="mitigation_goals")
        try:
            goals.append((kind, name, float(value)))
        except ValueError:
            raise ConfigError(f"expected a number for {key!r}, got {value!r}", field="mitigation_goals") from None
    return goals


def check_measurable(items: Sequence[str], field: str, probe: dict[str, Any] | None, grid: dict[str, Any] | None,
                     perturbations: Sequence[str], nuisance_defaults: Callable[[], Mapping[str, Any]]) -> None:
    """A ConfigError naming the first goal of `items` that the study cannot measure, before anything trains: a
    probe or Spearman goal of a perturbation its probe does not run, a share goal of a nuisance axis its grid holds
    at one value. `probe`, `grid`: the flags of `solireward probe` and `overopt-grid`, None where that stage is off;
    `perturbations`: the probe's perturbation names (``hacking.perturbations.NAMES``); `nuisance_defaults`: each
    nuisance axis of the grid with its default values (``hacking.grid``), called only for a share goal."""
    for kind, name, _ in parse_goals(items):
        goal = f"{kind}:{name}" if name else kind
        if kind in ("probe", "spearman"):
            if name not in perturbations:
                raise ConfigError(f"{goal}: expected a perturbation of the probe ({', '.join(perturbations)})",
                                  field=field)
            if probe is None:
                raise ConfigError(f"{goal} would not be measured: the study runs no probe", field=field)
            run = probe.get("perturbations") or perturbations
            if name not in run:
                raise ConfigError(f"{goal} would not be measured: probe.perturbations runs {', '.join(run)}",
                                  field=field)
        elif kind in ("share", "gap") and grid is None:
            raise ConfigError(f"{goal} would not be measured: the study runs no over-optimisation", field=field)
        elif kind == "share":
            defaults = nuisance_defaults()
            if name not in defaults:
                raise ConfigError(f"{goal}: expected a nuisance axis of the grid ({', '.join(defaults)})",
                                  field=field)
            values = grid.get(name, defaults[name])
            if len(set(values if isinstance(values, list) else [values])) < 2:
                raise ConfigError(f"{goal} would not be measured: the grid holds {name} at {values} (give "
                                  f"overopt_grid.{name} two values or more)", field=field)
