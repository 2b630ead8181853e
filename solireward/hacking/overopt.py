"""`solireward overopt`: optimise against a reward model on a grid of generator settings, watch the ground truth.

**Space.** For each of a few held-out prompts (the distinct prompts of ``--input_file``, e.g. the test
split, evenly spaced), the demo generator renders one video per setting of a finite grid (defect
kind x brightness x object size x background shade, :func:`solireward.data.synthetic.grid_specs`).
The defect kind fixes the ground truth; the nuisances leave it unchanged. The base distribution
pi0 is uniform over the grid of each prompt.

**Rewards.** Gold: the ground truth of the task (phy_deform: Pass on physics and deformity;
text_alignment: Pass on text alignment), 1 or 0. Proxy: the model's ``score_norm``. Every (prompt,
setting) is rendered and scored once; optimisation is then table look-ups.

**Best-of-n** (n = 1, 2, 4, ..., ``--max_n``): draw n settings from pi0, keep the one of highest proxy
(ties broken uniformly). Its distribution is exact: with m settings, the c_k settings of proxy at
most the k-th distinct value v_k, the best is a given setting of value v_k with probability
((c_k / m)^n - (c_{k-1} / m)^n) / (c_k - c_{k-1}). Gold and proxy are exact expectations under it.
The KL axis is the usual KL_bon = log n - (n - 1) / n (an upper bound; the exact KL of the
best-of-n distribution to pi0 is reported beside it as ``kl_exact``).

**GRPO-style policy optimisation.** Per-prompt categorical logits theta over the grid, pi =
softmax(theta), starting at pi0. Each step draws a group of ``--group_size`` settings per prompt from
pi, computes group-normalised advantages A = (r - mean) / std of the proxy within each prompt's group
(:func:`solireward.evaluation.group_advantages`) and ascends
(1/G) sum_i A_i grad log pi(a_i) - beta grad KL(pi || pi0), where the KL and its gradient are exact
(grad_k KL = pi_k (log(pi_k / pi0_k) - KL)). Gold, proxy and KL (exact expectations under pi, averaged
over prompts) are recorded along the way, for each ``--betas`` value.

**Summaries** per method: peak gold and the KL where it is reached, and the **hacking gap** at the
largest KL reached: proxy gain minus gold gain, each in standard deviations of that reward under pi0
over the whole grid (a proxy that tracks the gold reward exactly has gap 0). Writes ``overopt.json``
(every curve and the grid's table), ``overopt.md`` and ``overopt_curves.png``.
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
from solireward.data.pairing import TASK_DIMENSIONS
from solireward.data.synthetic import GRID_DEFECTS, grid_specs, render_video
from solireward.errors import ConfigError, InputError
from solireward.evaluation import group_advantages
from solireward.io import read_records

logger = logging.getLogger(__name__)

TASKS = tuple(TASK_DIMENSIONS)  # the tasks the demo generator has a ground truth for


@dataclasses.dataclass
class OveroptConfig:
    """Options of `solireward overopt`."""

    model_name_or_path: str = arg("trained reward-model folder (solireward train)")
    input_file: str = arg("held-out videos whose distinct demo prompts are optimised (e.g. a split's "
                          "videos_test.json); only the prompts are read")
    output_dir: str = arg("folder to write overopt.json, overopt.md and overopt_curves.png into")
    task: str | None = arg("gold reward: the ground truth of this task (default: the model's reward task)", None,
                           choices=TASKS)
    num_prompts: int = arg("held-out prompts optimised (evenly spaced among the file's distinct prompts)", 4)
    defects: list[str] = arg("defect kinds of the grid ('none' and defects of each dimension)",
                             default_factory=lambda: list(GRID_DEFECTS))
    brightness: list[float] = arg("brightness gains of the grid (a nuisance)", default_factory=lambda: [1.0, 1.4])
    scale: list[float] = arg("object sizes of the grid, relative (a nuisance)", default_factory=lambda: [1.0, 1.3])
    background_shift: list[int] = arg("background shades of the grid, added grey levels (a nuisance)",
                                      default_factory=lambda: [0, 60])
    size: int = arg("frame height and width of the rendered videos (the demo data's)", 64)
    num_frames: int = arg("frames per rendered video (the demo data's)", 16)
    fps: float = arg("frame rate of the rendered videos (the demo data's)", 8.0)
    max_n: int = arg("largest best-of-n (n = 1, 2, 4, ... up to it)", 256)
    betas: list[float] = arg("KL penalty coefficients of the policy optimisation",
                             default_factory=lambda: [0.0, 0.1, 0.3, 1.0])
    steps: int = arg("policy-optimisation steps per beta", 200)
    group_size: int = arg("settings drawn per prompt and step (the GRPO group)", 8)
    learning_rate: float = arg("step size on the logits", 1.0)
    record_every: int = arg("record gold, proxy and KL every this many steps", 5)
    seed: int = arg("seed of the grid's random state and of the policy's draws", 0)
    batch_size: int = arg("videos per forward pass", 8)

    def __post_init__(self) -> None:
        checks = [("num_prompts", self.num_prompts >= 1, "at least 1"),
                  ("max_n", self.max_n >= 1, "at least 1"),
                  ("steps", self.steps >= 1, "at least 1"),
                  ("group_size", self.group_size >= 2, "at least 2"),
                  ("learning_rate", self.learning_rate > 0, "positive"),
                  ("record_every", self.record_every >= 1, "at least 1"),
                  ("betas", bool(self.betas) and min(self.betas) >= 0, "one or more non-negative values"),
                  ("brightness", bool(self.brightness) and min(self.brightness) > 0, "positive gains"),
                  ("scale", bool(self.scale) and min(self.scale) > 0, "positive sizes"),
                  ("background_shift", bool(self.background_shift), "one or more values"),
                  ("defects", bool(self.defects) and set(self.defects) <= set(GRID_DEFECTS),
                   f"one or more of {', '.join(GRID_DEFECTS)}"),
                  ("size", self.size >= 32 and self.size % 2 == 0, "even and at least 32"),
                  ("num_frames", self.num_frames >= 8, "at least 8"),
                  ("fps", self.fps > 0, "positive")]
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
    """The usual KL of best-of-n to its base distribution: log n − (n − 1) / n."""
    return math.log(n) - (n - 1) / n


def best_of_n(proxy: np.ndarray, gold: np.ndarray, max_n: int = 256) -> list[dict[str, float]]:
    """Gold and proxy of best-of-n for n = 1, 2, 4, ..., max_n: exact expectations, averaged over prompts."""
    proxy, gold = np.atleast_2d(proxy), np.atleast_2d(gold)
    base = np.full(proxy.shape, 1.0 / proxy.shape[1])
    rows = []
    n = 1
    while n <= max_n:
        pi = best_of_n_distribution(proxy, n)
        kl = kl_best_of_n(n)
        rows.append({"n": n, "kl": kl, "sqrt_kl": math.sqrt(kl), "kl_exact": float(kl_divergence(pi, base).mean()),
                     "gold": float((pi * gold).sum(1).mean()), "proxy": float((pi * proxy).sum(1).mean())})
        n *= 2
    return rows


def grpo(proxy: np.ndarray, gold: np.ndarray, betas: Sequence[float], steps: int = 200, group_size: int = 8,
         learning_rate: float = 1.0, record_every: int = 5, seed: int = 0) -> dict[float, list[dict[str, float]]]:
    """GRPO-style optimisation of per-prompt logits against `proxy` with an exact KL penalty (see module doc).

    The runs of all `betas` advance together (one group-advantage call per step). Returns per beta the
    curve: step, KL, sqrt(KL), gold and proxy (exact expectations under the policy, averaged over prompts).
    """
    proxy, gold = np.atleast_2d(proxy).astype(float), np.atleast_2d(gold).astype(float)
    n_prompts, m = proxy.shape
    n_runs = len(betas) * n_prompts  # row r: beta r // n_prompts, prompt r % n_prompts
    run_proxy, run_gold = np.tile(proxy, (len(betas), 1)), np.tile(gold, (len(betas), 1))
    beta = np.repeat(np.asarray(betas, dtype=float), n_prompts)[:, None]
    base = np.full((n_runs, m), 1.0 / m)
    logits = np.zeros((n_runs, m))
    rng = np.random.default_rng([seed, 11])
    rows = np.repeat(np.arange(n_runs), group_size)
    curves: dict[float, list[dict[str, float]]] = {float(b): [] for b in betas}

    def record(step: int) -> None:
        pi = softmax(logits)
        kl = kl_divergence(pi, base).reshape(len(betas), n_prompts).mean(1)
        gold_now = (pi * run_gold).sum(1).reshape(len(betas), n_prompts).mean(1)
        proxy_now = (pi * run_proxy).sum(1).reshape(len(betas), n_prompts).mean(1)
        for b, value in enumerate(betas):
            curves[float(value)].append({"step": step, "kl": float(kl[b]), "sqrt_kl": math.sqrt(max(float(kl[b]), 0.0)),
                                         "gold": float(gold_now[b]), "proxy": float(proxy_now[b])})

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


def summarise(curve: Sequence[dict[str, float]], base_gold: float, base_proxy: float, gold_std: float,
              proxy_std: float) -> dict[str, float]:
    """Peak gold and its KL; at the largest KL: gold, proxy, their gains (raw and in base std) and the hacking gap."""
    peak = max(curve, key=lambda r: (r["gold"], -r["kl"]))
    last = max(curve, key=lambda r: r["kl"])
    gold_gain, proxy_gain = last["gold"] - base_gold, last["proxy"] - base_proxy
    gold_gain_std = gold_gain / gold_std if gold_std > 0 else 0.0
    proxy_gain_std = proxy_gain / proxy_std if proxy_std > 0 else 0.0
    return {"peak_gold": peak["gold"], "kl_at_peak": peak["kl"], "max_kl": last["kl"], "gold_at_max_kl": last["gold"],
            "proxy_at_max_kl": last["proxy"], "gold_gain": gold_gain, "proxy_gain": proxy_gain,
            "gold_gain_std": gold_gain_std, "proxy_gain_std": proxy_gain_std,
            "hacking_gap": proxy_gain_std - gold_gain_std}


def optimise(proxy: np.ndarray, gold: np.ndarray, max_n: int = 256, betas: Sequence[float] = (0.0, 0.1, 0.3, 1.0),
             steps: int = 200, group_size: int = 8, learning_rate: float = 1.0, record_every: int = 5,
             seed: int = 0) -> dict[str, Any]:
    """Best-of-n and GRPO for each beta on a (prompts x settings) table of proxy and gold rewards, with summaries."""
    proxy, gold = np.atleast_2d(proxy).astype(float), np.atleast_2d(gold).astype(float)
    if proxy.shape != gold.shape:
        raise InputError(f"proxy {proxy.shape} and gold {gold.shape} tables differ in shape", field="proxy")
    base_gold, base_proxy = float(gold.mean()), float(proxy.mean())
    gold_std, proxy_std = float(gold.std()), float(proxy.std())
    curves = {"best_of_n": best_of_n(proxy, gold, max_n)}
    for beta, curve in grpo(proxy, gold, betas, steps, group_size, learning_rate, record_every, seed).items():
        curves[f"grpo_beta={beta:g}"] = curve
    return {"base": {"gold": base_gold, "proxy": base_proxy, "gold_std": gold_std, "proxy_std": proxy_std,
                     "best_gold": float(gold.max(1).mean())},
            "curves": curves,
            "summary": {name: summarise(curve, base_gold, base_proxy, gold_std, proxy_std)
                        for name, curve in curves.items()}}


# ----------------------------------------------------------------------------------------------
# The grid and the command


def held_out_prompts(input_file: str, count: int) -> list[str]:
    """`count` distinct prompts of a record file, evenly spaced in order of first appearance."""
    prompts: list[str] = []
    for row, record in enumerate(read_records(input_file)):
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InputError("no 'prompt' (expected a demo prompt)", file=input_file, row=row, field="prompt")
        if prompt not in prompts:
            prompts.append(prompt)
    if not prompts:
        raise InputError("holds no records", file=input_file)
    keep = np.unique(np.round(np.linspace(0, len(prompts) - 1, min(count, len(prompts)))).astype(int))
    return [prompts[i] for i in keep]


def gold_reward(spec: Any, task: str) -> int:
    """The ground truth of `task` for a grid video: 1 (Pass) or 0."""
    return int(all(spec.labels[dimension] for dimension in TASK_DIMENSIONS[task]))


def run_overopt(config: OveroptConfig, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Render and score the grid once, then run best-of-n and GRPO on the table (the result of overopt.json)."""
    from solireward.models import RewardModel

    start = time.perf_counter()
    model = RewardModel.from_pretrained(config.model_name_or_path)
    loaded = time.perf_counter()
    task = config.task or model.config.reward_task
    if task not in TASKS:
        raise ConfigError(f"the model's reward task {task!r} has no gold reward here; pass --task", field="task")
    prompts = held_out_prompts(config.input_file, config.num_prompts)
    try:
        grids = [grid_specs(prompt, tuple(config.defects), tuple(config.brightness), tuple(config.scale),
                            tuple(config.background_shift), config.seed, p) for p, prompt in enumerate(prompts)]
    except InputError as exc:
        raise InputError(str(exc), file=config.input_file, field="prompt") from None
    specs = [spec for grid in grids for spec in grid]
    frames = [render_video(spec, config.size, config.num_frames) for spec in specs]
    rendered = time.perf_counter()
    raw = model.score_frames(frames, [s.prompt for s in specs], fps=config.fps, batch_size=config.batch_size)
    scored = time.perf_counter()
    proxy = np.asarray(model.normalise(np.asarray(raw)), dtype=float).reshape(len(prompts), -1)
    gold = np.array([gold_reward(s, task) for s in specs], dtype=float).reshape(len(prompts), -1)
    result = optimise(proxy, gold, config.max_n, config.betas, config.steps, config.group_size,
                      config.learning_rate, config.record_every, config.seed)
    settings = [{"defect": (s.physics_defect or s.deformity_defect or s.text_defect or "none"), **s.nuisance}
                for s in grids[0]]
    return {"model": config.model_name_or_path, "input_file": config.input_file, "task": task, "tags": tags or {},
            "prompts": prompts, "settings": settings, "proxy": proxy.tolist(), "gold": gold.tolist(),
            "nuisance_effects": nuisance_effects(proxy, settings), **result,
            "seconds": {"load": round(loaded - start, 1), "render": round(rendered - loaded, 1),
                        "score": round(scored - rendered, 1),
                        "total": round(time.perf_counter() - start, 1)}}


def nuisance_effects(proxy: np.ndarray, settings: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean proxy at each nuisance's largest value minus at its smallest (gold does not depend on them)."""
    out = {}
    for key in ("brightness", "scale", "background_shift"):
        values = np.array([s[key] for s in settings], dtype=float)
        if values.max() > values.min():
            out[key] = float(proxy[:, values == values.max()].mean() - proxy[:, values == values.min()].mean())
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from solireward.io import atomic_path

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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def overopt_markdown(result: dict[str, Any]) -> str:
    """The summaries of an overopt result as a Markdown table."""
    base = result["base"]
    lines = [f"# Over-optimisation: {result.get('model', '')}", "",
             f"Task {result['task']}; {len(result['prompts'])} held-out prompts x {len(result['settings'])} settings. "
             f"Base (uniform) gold pass rate {base['gold']:.3f}, best achievable {base['best_gold']:.3f}; base proxy "
             f"{base['proxy']:+.3f}. Hacking gap = proxy gain − gold gain at the largest KL, each in base-"
             "distribution std of that reward.", "",
             "| method | peak gold | KL at peak | max KL | gold at max KL | proxy at max KL | hacking gap |",
             "|---|---|---|---|---|---|---|"]
    for method, s in result["summary"].items():
        lines.append(f"| {method} | {s['peak_gold']:.3f} | {s['kl_at_peak']:.2f} | {s['max_kl']:.2f} | "
                     f"{s['gold_at_max_kl']:.3f} | {s['proxy_at_max_kl']:+.3f} | {s['hacking_gap']:+.2f} |")
    effects = result.get("nuisance_effects") or {}
    if effects:
        lines += ["", "Proxy change from each nuisance's smallest to largest value (gold is unchanged by them): "
                  + ", ".join(f"{k} {v:+.3f}" for k, v in effects.items()) + "."]
    return "\n".join(lines) + "\n"
