"""`solireward overopt`: optimise against a reward model on a grid of generator settings, watch the ground truth.

**Space.** The grid of :mod:`solireward.hacking.grid`: for each held-out prompt (every distinct prompt
of the test split by default), one demo video per generator setting (defect kind x nuisances), with
known labels. It is rendered once per study (``solireward overopt-grid``) and read by each model
(``--grid_dir``); without ``--grid_dir`` it is rendered in memory from ``--input_file``. The base
distribution pi0 is uniform over the grid of each prompt.

**Rewards.** Gold: the ground truth of the task (phy_deform: Pass on physics and deformity;
text_alignment: Pass on text alignment), 1 or 0. Proxy: the model's ``score_norm``. Every (prompt,
setting) is scored once; optimisation is then table look-ups. With several ``--model_name_or_path``
folders the proxy is their conservative reward (``--ensemble``, :mod:`solireward.conservative`).

**Best-of-n** (n = 1, 2, 4, ..., ``--max_n``): draw n settings from pi0, keep the one of highest proxy
(ties broken uniformly). Its distribution is exact: with m settings, the c_k settings of proxy at
most the k-th distinct value v_k, the best is a given setting of value v_k with probability
((c_k / m)^n - (c_{k-1} / m)^n) / (c_k - c_{k-1}). Gold, proxy and the KL axis are exact under it:
``kl`` = KL(best-of-n || pi0) computed over the grid. The usual closed form log n - (n - 1) / n is
exact only for a continuous proxy (no ties, infinitely many settings); on a finite grid it is an
upper bound and can exceed log m, the most any policy reaches, so it is only reported, as ``kl_bound``.

**GRPO-style policy optimisation.** Per-prompt categorical logits theta over the grid, pi =
softmax(theta), starting at pi0. Each step draws a group of ``--group_size`` settings per prompt from
pi, computes group-normalised advantages A = (r - mean) / std of the proxy within each prompt's group
(:func:`solireward.evaluation.group_advantages`) and ascends
(1/G) sum_i A_i grad log pi(a_i) - beta grad KL(pi || pi0), where the KL and its gradient are exact
(grad_k KL = pi_k (log(pi_k / pi0_k) - KL)). Gold, proxy and KL (exact expectations under pi) are
recorded per prompt (``per_prompt``) and averaged over prompts, for each ``--betas`` value.

**Nuisance shares** (``nuisance_shares``): per nuisance axis and value, the share of each method's
picks there beside the base share, with an interval and a flag (:mod:`solireward.hacking.nuisance`).

**Summaries** per method: peak gold and the KL where it is reached, and at the largest KL reached the
gold and proxy gains over pi0 and the **hacking gap** = proxy gain - gold gain, each gain in standard
deviations of that reward under pi0 over the whole grid (a proxy that tracks the gold reward exactly
has gap 0). Each is a mean over prompts of per-prompt values (``per_prompt``) with a 95 % t interval
over prompts (``*_ci``; :mod:`solireward.hacking.intervals`). :func:`summary_at_kl` gives the same at
any KL (linear interpolation between recorded points) and :func:`compare_overopt` compares two models
on the same grid at their largest common KL, paired over prompts (difference, interval, p).
Writes ``overopt.json`` (every curve and the grid's table), ``overopt.md`` and ``overopt_curves.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from solireward.config import arg
from solireward.conservative import EnsembleOptions, conservative_reward
from solireward.data.pairing import TASK_DIMENSIONS
from solireward.errors import ConfigError, InputError
from solireward.evaluation import group_advantages
from solireward.hacking.grid import NUISANCE_AXES, Grid, GridOptions
from solireward.hacking.intervals import CONFIDENCE, mean_interval, replicated_comparison
from solireward.hacking.nuisance import SHARE_THRESHOLD, groups, share_markdown, share_summary, shares
from solireward.table import markdown_table

logger = logging.getLogger(__name__)

TASKS = tuple(TASK_DIMENSIONS)  # the tasks the demo generator has a ground truth for
GAINS = ("gold_gain", "proxy_gain", "gold_gain_std", "proxy_gain_std", "hacking_gap")


@dataclasses.dataclass
class OveroptConfig:
    """Options of `solireward overopt`."""

    model_name_or_path: list[str] = arg("trained reward-model folder (solireward train); several folders: the "
                                        "proxy is their conservative reward (--ensemble)")
    output_dir: str = arg("folder to write overopt.json, overopt.md and overopt_curves.png into")
    grid_dir: str | None = arg("the grid written by `solireward overopt-grid` (its prompts, settings and frames); "
                               "None: render it in memory from --input_file and the grid options", None)
    input_file: str | None = arg("without --grid_dir: held-out videos whose distinct demo prompts are optimised "
                                 "(e.g. a split's videos_test.json); only the prompts are read", None)
    task: str | None = arg("gold reward: the ground truth of this task (default: the model's reward task)", None,
                           choices=TASKS)
    max_n: int = arg("largest best-of-n (n = 1, 2, 4, ... up to it)", 256)
    betas: list[float] = arg("KL penalty coefficients of the policy optimisation",
                             default_factory=lambda: [0.0, 0.1, 0.3, 1.0])
    steps: int = arg("policy-optimisation steps per beta", 200)
    group_size: int = arg("settings drawn per prompt and step (the GRPO group)", 8)
    learning_rate: float = arg("step size on the logits", 1.0)
    record_every: int = arg("record gold, proxy and KL every this many steps", 5)
    seed: int = arg("seed of the policy's draws (and of the grid's random state when it is rendered here)", 0)
    batch_size: int = arg("videos per forward pass", 8)
    share_threshold: float = arg("flag a method whose share of picks at a nuisance value departs from the base share "
                                 "by more than this, its whole interval over prompts included", SHARE_THRESHOLD)

    def __post_init__(self) -> None:
        checks = [("max_n", self.max_n >= 1, "at least 1"),
                  ("share_threshold", 0 < self.share_threshold < 1, "in (0, 1)"),
                  ("steps", self.steps >= 1, "at least 1"),
                  ("group_size", self.group_size >= 2, "at least 2"),
                  ("learning_rate", self.learning_rate > 0, "positive"),
                  ("record_every", self.record_every >= 1, "at least 1"),
                  ("betas", bool(self.betas) and min(self.betas) >= 0, "one or more non-negative values"),
                  ("input_file", (self.grid_dir is None) != (self.input_file is None),
                   "exactly one of --grid_dir and --input_file")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


# ----------------------------------------------------------------------------------------------
# Distributions and KL


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (P, m) logits."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def kl_divergence(pi: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Exact KL(pi || base) per row of (P, m) distributions (0 log 0 = 0)."""
    ratio = np.where(pi > 0, pi / np.where(base > 0, base, 1.0), 1.0)
    return np.sum(np.where(pi > 0, pi * np.log(ratio), 0.0), axis=-1)


def best_of_n_distribution(proxy: np.ndarray, n: int) -> np.ndarray:
    """(P, m) probability that each setting is the best-of-n draw from the uniform base (exact; see module doc)."""
    proxy = np.atleast_2d(proxy)
    out = np.empty(proxy.shape)
    m = proxy.shape[1]
    for p, row in enumerate(proxy):
        values, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        upto = np.cumsum(counts)
        below = upto - counts
        group = (upto / m) ** n - (below / m) ** n
        out[p] = (group / counts)[inverse]
    return out


def kl_best_of_n(n: int) -> float:
    """The closed-form KL of best-of-n, log n − (n − 1) / n: exact for a continuous proxy, a bound on a grid."""
    return math.log(n) - (n - 1) / n


def curve_point(pi: np.ndarray, proxy: np.ndarray, gold: np.ndarray, masks: dict[str, np.ndarray] | None = None,
                **extra: float) -> dict[str, Any]:
    """KL to the uniform base, gold and proxy of a (prompts, settings) policy: means over prompts and per prompt;
    with `masks` (:func:`solireward.hacking.nuisance.groups`) also its share of each nuisance value per prompt."""
    kl = kl_divergence(pi, np.full(pi.shape, 1.0 / pi.shape[1]))
    per_prompt: dict[str, Any] = {k: v.tolist() for k, v in
                                  {"kl": kl, "gold": (pi * gold).sum(1), "proxy": (pi * proxy).sum(1)}.items()}
    if masks:
        per_prompt["share"] = shares(pi, masks)
    mean_kl = float(kl.mean())
    return {**extra, "kl": mean_kl, "sqrt_kl": math.sqrt(max(mean_kl, 0.0)),
            "gold": float(np.mean(per_prompt["gold"])), "proxy": float(np.mean(per_prompt["proxy"])),
            "per_prompt": per_prompt}


def best_of_n(proxy: np.ndarray, gold: np.ndarray, max_n: int = 256, masks: dict[str, np.ndarray] | None = None
              ) -> list[dict[str, Any]]:
    """Best-of-n for n = 1, 2, 4, ..., max_n: exact KL, gold and proxy per prompt and averaged over prompts (and the
    shares of `masks`, see :func:`curve_point`)."""
    proxy, gold = np.atleast_2d(proxy), np.atleast_2d(gold)
    rows = []
    n = 1
    while n <= max_n:
        rows.append(curve_point(best_of_n_distribution(proxy, n), proxy, gold, masks, n=n, kl_bound=kl_best_of_n(n)))
        n *= 2
    return rows


def grpo(proxy: np.ndarray, gold: np.ndarray, betas: Sequence[float], steps: int = 200, group_size: int = 8,
         learning_rate: float = 1.0, record_every: int = 5, seed: int = 0, masks: dict[str, np.ndarray] | None = None
         ) -> dict[float, list[dict[str, Any]]]:
    """GRPO-style optimisation of per-prompt logits against `proxy` with an exact KL penalty (see module doc).

    The runs of all `betas` advance together (one group-advantage call per step). Returns per beta the
    curve: step, KL, sqrt(KL), gold and proxy (exact expectations under the policy, per prompt and averaged).
    """
    proxy, gold = np.atleast_2d(proxy).astype(float), np.atleast_2d(gold).astype(float)
    n_prompts, m = proxy.shape
    n_runs = len(betas) * n_prompts  # row r: beta r // n_prompts, prompt r % n_prompts
    run_proxy = np.tile(proxy, (len(betas), 1))
    beta = np.repeat(np.asarray(betas, dtype=float), n_prompts)[:, None]
    base = np.full((n_runs, m), 1.0 / m)
    logits = np.zeros((n_runs, m))
    rng = np.random.default_rng([seed, 11])
    rows = np.repeat(np.arange(n_runs), group_size)
    curves: dict[float, list[dict[str, Any]]] = {float(b): [] for b in betas}

    def record(step: int) -> None:
        pi = softmax(logits).reshape(len(betas), n_prompts, m)
        for b, value in enumerate(betas):
            curves[float(value)].append(curve_point(pi[b], proxy, gold, masks, step=step))

    record(0)
    for step in range(1, steps + 1):
        pi = softmax(logits)
        cumulative = pi.cumsum(1)
        draws = (rng.random((n_runs, group_size, 1)) > cumulative[:, None, :-1]).sum(-1)  # inverse CDF
        rewards = np.take_along_axis(run_proxy, draws, 1)
        advantage, _, _ = group_advantages(rewards.ravel(), rows)
        advantage = np.nan_to_num(advantage, nan=0.0)  # a group of equal rewards carries no signal
        chosen = np.zeros((n_runs, m))
        np.add.at(chosen, (rows, draws.ravel()), advantage)
        policy_gradient = (chosen - advantage.reshape(n_runs, group_size).sum(1, keepdims=True) * pi) / group_size
        kl = kl_divergence(pi, base)[:, None]
        kl_gradient = pi * (np.log(np.where(pi > 0, pi, 1.0) / base) - kl)
        logits += learning_rate * (policy_gradient - beta * kl_gradient)
        if step % record_every == 0 or step == steps:
            record(step)
    return curves


def _gains(point: dict[str, Any], base: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-prompt gains of a curve point over the base policy, raw and in base std, and the hacking gap."""
    gold = np.asarray(point["per_prompt"]["gold"]) - np.asarray(base["gold_per_prompt"])
    proxy = np.asarray(point["per_prompt"]["proxy"]) - np.asarray(base["proxy_per_prompt"])
    gold_std = gold / base["gold_std"] if base["gold_std"] > 0 else np.zeros_like(gold)
    proxy_std = proxy / base["proxy_std"] if base["proxy_std"] > 0 else np.zeros_like(proxy)
    return {"gold_gain": gold, "proxy_gain": proxy, "gold_gain_std": gold_std, "proxy_gain_std": proxy_std,
            "hacking_gap": proxy_std - gold_std}


def _with_intervals(gains: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in GAINS:
        interval = mean_interval(gains[name])
        out[name] = interval["mean"]
        out[f"{name}_ci"] = None if interval["low"] is None else [interval["low"], interval["high"]]
    out["per_prompt"] = {name: gains[name].tolist() for name in GAINS}
    return out


def point_at_kl(curve: Sequence[dict[str, Any]], kl: float) -> dict[str, Any] | None:
    """The curve at mean KL `kl`, per-prompt values linearly interpolated between recorded points; None beyond it."""
    points = sorted(curve, key=lambda r: r["kl"])
    if not points[0]["kl"] <= kl <= points[-1]["kl"] + 1e-12:
        return None
    upper = next((i for i, r in enumerate(points) if r["kl"] >= kl), len(points) - 1)
    lo, hi = points[max(upper - 1, 0)], points[upper]
    w = 0.0 if hi["kl"] == lo["kl"] else (kl - lo["kl"]) / (hi["kl"] - lo["kl"])
    per_prompt = {k: ((1 - w) * np.asarray(lo["per_prompt"][k]) + w * np.asarray(hi["per_prompt"][k])).tolist()
                  for k in ("gold", "proxy")}
    return {"kl": kl, "per_prompt": per_prompt}


def summarise(curve: Sequence[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """Peak gold and its KL; at the largest KL: gold, proxy, their gains (raw and in base std, each with its 95 %
    interval over prompts) and the hacking gap."""
    peak = max(curve, key=lambda r: (r["gold"], -r["kl"]))
    last = max(curve, key=lambda r: r["kl"])
    return {"peak_gold": peak["gold"], "kl_at_peak": peak["kl"], "max_kl": last["kl"], "gold_at_max_kl": last["gold"],
            "proxy_at_max_kl": last["proxy"], **_with_intervals(_gains(last, base))}


def summary_at_kl(result: dict[str, Any], method: str, kl: float) -> dict[str, Any] | None:
    """Gains and hacking gap of `method` at mean KL `kl` (None beyond its curve), with intervals over prompts."""
    point = point_at_kl(result["curves"][method], kl)
    return None if point is None else {"kl": kl, **_with_intervals(_gains(point, result["base"]))}


def common_kl(results: Sequence[dict[str, Any]], method: str) -> float | None:
    """The largest KL that every result's `method` curve reaches (None when one lacks the method)."""
    if not results or any(method not in r["summary"] for r in results):
        return None
    return min(r["summary"][method]["max_kl"] for r in results)


def overopt_matrix(results: Sequence[dict[str, Any]], method: str, kl: float, name: str) -> np.ndarray | None:
    """(replicates, prompts) per-prompt `name` (a gain or the hacking gap) of `method` at mean KL `kl` in K results
    of one cell; None when they are on different grids or `kl` is beyond a curve."""
    if len({(tuple(r["prompts"]), str(r["settings"])) for r in results}) != 1:
        return None
    summaries = [summary_at_kl(r, method, kl) for r in results]
    if any(s is None for s in summaries):
        return None
    return np.array([s["per_prompt"][name] for s in summaries], dtype=float)


def compare_overopt(treated: dict[str, Any] | Sequence[dict[str, Any]],
                    reference: dict[str, Any] | Sequence[dict[str, Any]], method: str = "best_of_n",
                    kl: float | None = None, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Two cells on the same grid, paired over prompts at KL `kl` (default: the largest KL every curve reaches).

    A side is one result or the results of its K trainings (seeds): then the interval is over prompts and seeds
    (``intervals.replicated_comparison``, the paired t-test with one training a side). Returns ``{"kl", name:
    {"difference", "low", "high", "p", "n", ...} for each gain and the hacking gap}``: treated minus reference.
    """
    sides = [[side] if isinstance(side, dict) else list(side) for side in (treated, reference)]
    if len({(tuple(r["prompts"]), str(r["settings"])) for side in sides for r in side}) != 1:
        raise InputError("the two results are on different grids; a paired comparison needs the same prompts and "
                         "settings", field="prompts")
    if kl is None:
        kl = common_kl([*sides[0], *sides[1]], method)
    out: dict[str, Any] = {"kl": kl}
    for name in GAINS:
        a, b = (overopt_matrix(side, method, kl, name) for side in sides)
        if a is None or b is None:
            raise InputError(f"KL {kl:g} is beyond the {method} curve of one of the results", field="kl")
        out[name] = replicated_comparison(a, b, confidence)
    return out


def optimise(proxy: np.ndarray, gold: np.ndarray, max_n: int = 256, betas: Sequence[float] = (0.0, 0.1, 0.3, 1.0),
             steps: int = 200, group_size: int = 8, learning_rate: float = 1.0, record_every: int = 5,
             seed: int = 0, settings: Sequence[Sequence[dict[str, Any]]] | None = None,
             share_threshold: float = SHARE_THRESHOLD) -> dict[str, Any]:
    """Best-of-n and GRPO for each beta on a (prompts x settings) table of proxy and gold rewards, with summaries;
    with the grid's `settings`, the share of each method's picks at each nuisance value (``nuisance_shares``)."""
    proxy, gold = np.atleast_2d(proxy).astype(float), np.atleast_2d(gold).astype(float)
    if proxy.shape != gold.shape:
        raise InputError(f"proxy {proxy.shape} and gold {gold.shape} tables differ in shape", field="proxy")
    base = {"gold": float(gold.mean()), "proxy": float(proxy.mean()), "gold_std": float(gold.std()),
            "proxy_std": float(proxy.std()), "best_gold": float(gold.max(1).mean()),
            "gold_per_prompt": gold.mean(1).tolist(), "proxy_per_prompt": proxy.mean(1).tolist()}
    masks = groups(settings) if settings else {}
    curves = {"best_of_n": best_of_n(proxy, gold, max_n, masks)}
    for beta, curve in grpo(proxy, gold, betas, steps, group_size, learning_rate, record_every, seed, masks).items():
        curves[f"grpo_beta={beta:g}"] = curve
    return {"base": base, "curves": curves, "summary": {name: summarise(curve, base) for name, curve in curves.items()},
            "nuisance_shares": share_summary(curves, masks, share_threshold)}


# ----------------------------------------------------------------------------------------------
# The command


def run_overopt(config: OveroptConfig, options: GridOptions | None = None, tags: dict[str, str] | None = None,
                ensemble: EnsembleOptions | None = None) -> dict[str, Any]:
    """Score the grid (read from --grid_dir, else rendered from `options`) once with each model, then run best-of-n
    and GRPO on the table of the (conservative, with several models) proxy: the result of overopt.json."""
    from solireward.models import RewardModel

    start = time.perf_counter()
    grid = Grid.load(config.grid_dir) if config.grid_dir else \
        Grid.from_records(str(config.input_file), options or GridOptions(), config.seed)
    models = [RewardModel.from_pretrained(folder) for folder in config.model_name_or_path]
    loaded = time.perf_counter()
    task = config.task or models[0].config.reward_task
    if task not in TASKS:
        raise ConfigError(f"the model's reward task {task!r} has no gold reward here; pass --task", field="task")
    normalised = np.empty((len(models), len(grid.prompts), len(grid.settings[0])))
    for p, prompt in enumerate(grid.prompts):
        frames = list(grid.frames(p))
        for k, model in enumerate(models):
            raw = model.score_frames(frames, [prompt] * len(frames), fps=grid.options.fps, batch_size=config.batch_size)
            normalised[k, p] = model.normalise(np.asarray(raw, dtype=float))
    scored = time.perf_counter()
    ensemble = ensemble or EnsembleOptions()
    proxy = conservative_reward(normalised.reshape(len(models), -1), ensemble.ensemble, ensemble.ensemble_lambda
                                ).reshape(normalised.shape[1:])
    gold = grid.gold(task)
    result = optimise(proxy, gold, config.max_n, config.betas, config.steps, config.group_size,
                      config.learning_rate, config.record_every, config.seed, grid.settings, config.share_threshold)
    models_field: Any = config.model_name_or_path[0] if len(models) == 1 else list(config.model_name_or_path)
    return {"model": models_field, "ensemble": ensemble.describe(len(models)) if len(models) > 1 else None,
            "grid_dir": config.grid_dir, "input_file": config.input_file,
            "task": task, "tags": tags or {}, "prompts": grid.prompts, "settings": grid.settings,
            "proxy": proxy.tolist(), "gold": gold.tolist(), "nuisance_effects": nuisance_effects(proxy, grid.settings),
            **result, "seconds": {"load": round(loaded - start, 1), "score": round(scored - loaded, 1),
                                  "total": round(time.perf_counter() - start, 1)}}


def nuisance_effects(proxy: np.ndarray, settings: Sequence[Sequence[dict[str, Any]]]) -> dict[str, float]:
    """Mean proxy at each nuisance's largest value minus at its smallest (gold does not depend on them), over the
    (prompts x settings) table with each prompt's settings."""
    out = {}
    for key in NUISANCE_AXES:
        values = np.array([[s[key] for s in row] for row in settings], dtype=float)
        if values.max() > values.min():
            out[key] = float(proxy[values == values.max()].mean() - proxy[values == values.min()].mean())
    return out


def curves_frame(result: dict[str, Any]) -> Any:
    """Every curve of an overopt result as one long pandas DataFrame (method, sqrt_kl, reward, value)."""
    import pandas as pd

    rows = []
    for method, curve in result["curves"].items():
        for point in curve:
            for reward in ("gold", "proxy"):
                rows.append({"method": method, "sqrt_kl": point["sqrt_kl"], "reward": reward, "value": point[reward]})
    return pd.DataFrame(rows)


def plot_curves(result: dict[str, Any], path: str | Path) -> None:
    """Gold pass rate and proxy vs sqrt(KL) for best-of-n and each beta (seaborn, Agg), written atomically."""
    from solireward.plotting import pyplot, save_figure

    plt, sns = pyplot()
    frame = curves_frame(result)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, reward, label in ((axes[0], "gold", "gold pass rate"), (axes[1], "proxy", "proxy (score_norm)")):
        sns.lineplot(data=frame[frame.reward == reward], x="sqrt_kl", y="value", hue="method", marker="o",
                     markersize=3, ax=ax, legend=reward == "gold")
        ax.axhline(result["base"][reward], color="grey", linestyle=":", linewidth=1)
        if reward == "gold":
            ax.axhline(result["base"]["best_gold"], color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="√KL (nats)", ylabel=label)
    title = " ".join(f"{k}={v}" for k, v in result.get("tags", {}).items()) or str(result.get("model", ""))
    fig.suptitle(f"Over-optimisation: {title}")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def overopt_markdown(result: dict[str, Any]) -> str:
    """The summaries of an overopt result as a Markdown table."""
    base = result["base"]

    def ci(summary: dict[str, Any], name: str) -> str:
        interval = summary[f"{name}_ci"]
        return "" if interval is None else f" [{interval[0]:+.2f}, {interval[1]:+.2f}]"

    lines = [f"# Over-optimisation: {result.get('model', '')}", "",
             f"Task {result['task']}; {len(result['prompts'])} held-out prompts x {len(result['settings'][0])} settings. "
             f"Base (uniform) gold pass rate {base['gold']:.3f}, best achievable {base['best_gold']:.3f}; base proxy "
             f"{base['proxy']:+.3f}. KL: exact KL(policy || uniform) over the grid. Gains at the largest KL, in "
             "base-distribution std of that reward; hacking gap = proxy gain − gold gain; [95 % t interval over "
             "prompts].", "",
             markdown_table(["method", "peak gold", "KL at peak", "max KL", "gold at max KL", "gold gain (std)",
                             "proxy gain (std)", "hacking gap"],
                            [[method, f"{s['peak_gold']:.3f}", f"{s['kl_at_peak']:.2f}", f"{s['max_kl']:.2f}",
                              f"{s['gold_at_max_kl']:.3f}", f"{s['gold_gain_std']:+.2f}{ci(s, 'gold_gain_std')}",
                              f"{s['proxy_gain_std']:+.2f}{ci(s, 'proxy_gain_std')}",
                              f"{s['hacking_gap']:+.2f}{ci(s, 'hacking_gap')}"]
                             for method, s in result["summary"].items()])]
    effects = result.get("nuisance_effects") or {}
    if effects:
        lines += ["", "Proxy change from each nuisance's smallest to largest value (gold is unchanged by them): "
                  + ", ".join(f"{k} {v:+.3f}" for k, v in effects.items()) + "."]
    lines += share_markdown(result["nuisance_shares"]) if "nuisance_shares" in result else []
    return "\n".join(lines) + "\n"
