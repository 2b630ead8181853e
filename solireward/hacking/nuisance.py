"""Where an optimiser's picks land on the grid's nuisance axes: the preference a hacking gap cannot see.

A proxy that prefers, say, large objects costs no gold on a grid where every defect kind is drawn at
both sizes, so its proxy-minus-gold gap stays small while best-of-n picks a large object every time.
For each nuisance axis of the grid's settings (every key but ``defect`` with two values or more) and
each of its values v, a policy pi's **share** at v is the probability it puts on settings with value
v, per prompt; the **base share** is that of the uniform base policy (the share of the grid's
settings with value v). Shares are recorded on every curve point (``share`` per prompt, see
:func:`groups` and :func:`solireward.hacking.overopt.curve_point`) and summarised by
:func:`share_summary` for best-of-n at each n and for each GRPO beta at its largest KL: the mean share
over prompts with its 95 % t interval over prompts (:mod:`solireward.hacking.intervals`), the
departure share - base, and ``flagged`` when the departure's interval lies wholly beyond ±threshold
(default 0.1): the method's picks follow that nuisance value more than prompt-to-prompt chance
explains, while the ground truth does not depend on it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from solireward.hacking.intervals import beyond, mean_interval

SHARE_THRESHOLD = 0.1


def groups(settings: Sequence[Sequence[dict[str, Any]]]) -> dict[str, np.ndarray]:
    """``{"axis=value": (prompts, settings) mask}`` of each prompt's settings (a grid's, see
    :attr:`solireward.hacking.grid.Grid.settings`), for each nuisance axis with two values or more, values sorted."""
    out = {}
    for axis in (key for key in settings[0][0] if key != "defect") if settings and settings[0] else ():
        table = [[s[axis] for s in row] for row in settings]
        values = sorted({value for row in table for value in row})
        if len(values) > 1:
            for value in values:
                out[f"{axis}={value:g}" if isinstance(value, (int, float)) else f"{axis}={value}"] = \
                    np.array([[c == value for c in row] for row in table])
    return out


def shares(pi: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per group, the probability each prompt's policy (a row of `pi`) puts on that prompt's settings in it."""
    return {label: (pi * mask).sum(1).tolist() for label, mask in masks.items()}


def _summary(per_prompt: Sequence[float], mask: np.ndarray, threshold: float) -> dict[str, Any]:
    """Mean share and its departure from each prompt's base share, with intervals over prompts, and the flag."""
    share, base = mean_interval(per_prompt), mask.mean(1)
    departure = mean_interval(np.asarray(per_prompt) - base)
    departure_ci = None if departure["low"] is None else [departure["low"], departure["high"]]
    return {"share": share["mean"], "share_ci": None if share["low"] is None else [share["low"], share["high"]],
            "base_share": float(base.mean()), "departure": departure["mean"], "departure_ci": departure_ci,
            "flagged": bool(departure_ci and beyond(*departure_ci, threshold))}


def share_summary(curves: dict[str, list[dict[str, Any]]], masks: dict[str, np.ndarray],
                  threshold: float = SHARE_THRESHOLD) -> dict[str, Any]:
    """Per method point (best-of-n at each n, each GRPO curve at its largest KL) and group: share, base, flag."""
    points = [(f"best_of_n n={point['n']}", point) for point in curves.get("best_of_n", [])]
    points += [(method, max(curve, key=lambda r: r["kl"])) for method, curve in curves.items()
               if method != "best_of_n"]
    rows = [{"method": method, "group": label, "kl": point["kl"],
             **_summary(point["per_prompt"]["share"][label], mask, threshold)}
            for method, point in points for label, mask in masks.items()]
    return {"threshold": threshold, "rows": rows}


def share_markdown(summary: dict[str, Any]) -> list[str]:
    """Lines of overopt.md: a table of every share row (flagged ones in bold)."""
    from solireward.table import markdown_table

    if not summary["rows"]:
        return []

    def interval(ci: list[float] | None) -> str:
        return "" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"

    rows = [[r["method"], r["group"], f"{r['base_share']:.2f}", f"{r['share']:.2f}",
             f"{r['departure']:+.2f}{interval(r['departure_ci'])}", "**flagged**" if r["flagged"] else ""]
            for r in summary["rows"]]
    return ["", f"Share of each method's picks at each nuisance value beside the base (uniform) share; departure = "
            f"share − base [95 % t interval over prompts]; flagged when that interval lies wholly beyond "
            f"±{summary['threshold']:g}. The ground truth does not depend on any of these values.", "",
            markdown_table(["method", "nuisance value", "base share", "share", "departure", "flag"], rows, 2)]
