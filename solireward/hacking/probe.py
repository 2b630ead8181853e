"""`solireward probe`: how a reward model's score moves under changes that should or should not move it.

Each input video is decoded once (every frame, at its native size and frame rate) and scored clean
and under each perturbation, in memory; only ``reencode`` writes and reads an mp4. The perturbations
and what each should do: :mod:`solireward.hacking.perturbations`. ``--perturbations`` picks the ones
a run uses (default: every one).

**Not tested.** Each perturbed video's model input (the processed tensors, including the frame
rate the model is told) is compared with its clean input. Videos whose input is unchanged (e.g.
``frames_x0.5`` in 'fps' mode when ``min_frames`` keeps the count, ``resolution_x2`` when the size
is capped, ``hue`` on a grey video) are left out of that perturbation's statistics (``n_unchanged``);
a perturbation that changes no video's input is ``"not tested"`` with its ``reason``, never "ok".

**Already shown.** With ``--shown`` (a table of each video's nuisance values, e.g. the demo's
``ground_truth.csv``), a video that already shows a planted cue (:data:`~solireward.data.synthetic.plan.CUES`:
its column away from the cue's neutral value) is left out of that cue's own perturbations (``Cue.shown_by``; the
object size's are both zooms) and counted in ``n_shown``: the edit would stack on itself (a letterbox inside a
letterbox), and a model that learnt the cue barely moves when it is doubled. On the letterbox study's data,
where 3 of 8 videos show each cue, leaving them in understated the letterbox-biased models' shift by 0.8 std (1.01
with them, 1.83 without; docs/MEASURED.md).

Per perturbation, over the ``n_tested`` videos whose input it changes, with d = perturbed - clean
score of each video and s the standard deviation of the clean scores of all probed videos:
``per_video_change_std`` = d / s per video (null where not tested; d itself when s = 0, and so for
the next two), ``mean_change_std`` = their mean with ``mean_change_std_ci``, its 95 % t interval over
videos (:mod:`solireward.hacking.intervals`), ``share_up`` = share of videos with d > 0, ``spearman`` =
rank correlation of clean and perturbed scores (null when either is constant), and a verdict against
the expected direction with threshold t (``--threshold``, in clean std units): invariant passes when
|mean_change_std| <= t, lower when mean_change_std <= -t, no_gain when mean_change_std <= t.

**Shortcut flag.** A perturbation the score should ignore (invariant, no_gain) whose 95 % interval
lies wholly beyond the threshold (invariant: above t or below -t; no_gain: above t) sets
``shortcut``: the model's score follows that nuisance, more than chance at this number of videos can
explain, while its labels never depend on it. ``flagged`` is the point estimate's verdict; ``shortcut``
the stricter claim (no interval, e.g. one tested video: no shortcut flag).
:func:`compare_probes` compares two models probed on the same videos (paired, per perturbation).
An unreadable video is skipped and listed under ``skipped``. Each row records the ``seconds`` its perturbing,
encoding and scoring took (a perturbation that changes no video's input costs no scoring); the shuffle and noise
draws are seeded by ``--seed`` and the perturbation's name, so they are the same whichever others run.
Writes ``probe.json`` and ``probe.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from solireward.config import arg
from solireward.data.video import FrameSampling, read_all_frames, sample_frames
from solireward.errors import ConfigError, InputError, VideoReadError
from solireward.hacking.intervals import CONFIDENCE, beyond, mean_interval, replicated_comparison
from solireward.hacking.perturbations import (EXPECTED, IGNORE, NAMES, PERTURBATIONS, Clip, Perturbation, select,
                                              swapped_prompts)
from solireward.io import markdown_cell
from solireward.table import markdown_table

logger = logging.getLogger(__name__)

DEFAULT_FPS = 8.0  # assumed for a video whose container gives no frame rate


@dataclasses.dataclass
class ProbeConfig:
    """Options of `solireward probe`."""

    model_name_or_path: str = arg("trained reward-model folder (solireward train)")
    input_file: str = arg("videos to probe: a JSON/JSONL list of {video_path, prompt} (relative paths are read "
                          "from the file's folder), e.g. a split's videos_test.json")
    output_dir: str = arg("folder to write probe.json and probe.md into")
    max_videos: int | None = arg("probe at most this many videos, evenly spaced through the input file "
                                 "(default: every video)", None)
    perturbations: list[str] | None = arg("probe only these perturbations (default: all of them; each costs about "
                                          "one clean pass of scoring)", None)
    threshold: float = arg("verdict and shortcut-flag threshold on the mean score change, in standard deviations "
                           "of the clean scores", 0.25)
    seed: int = arg("seed of the shuffle and noise perturbations", 0)
    shown: str | None = arg("a CSV of video_path (relative to its folder) and one column per planted cue, e.g. the "
                            "demo's ground_truth.csv: a video that already shows a cue is left out of that cue's own "
                            "perturbation (default: none is)", None)
    batch_size: int = arg("videos per forward pass", 8)
    video_backend: str = arg("video decoder", "auto", choices=("auto", "decord", "pyav"))

    def __post_init__(self) -> None:
        for name, ok, expected in (("max_videos", self.max_videos is None or self.max_videos >= 2, "at least 2"),
                                   ("perturbations", self.perturbations is None or (
                                       bool(self.perturbations) and set(self.perturbations) <= set(NAMES)),
                                    f"one or more of {', '.join(NAMES)}"),
                                   ("threshold", self.threshold > 0, "positive"),
                                   ("batch_size", self.batch_size >= 1, "at least 1")):
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


# ----------------------------------------------------------------------------------------------
# Inputs and scorers


def load_clips(input_file: str, max_videos: int | None = None, backend: str = "auto"
               ) -> tuple[list[Clip], list[str], list[dict[str, str]]]:
    """Decode (at most `max_videos`, evenly spaced) videos of a record file (``infer``'s reader).

    Returns the clips, their ``video_path`` values, and ``{"video_path", "error"}`` of each video that
    could not be read (skipped, with a warning).
    """
    from solireward.inference import load_records, records_root, resolve_video

    records = load_records(input_file)
    if not records:
        raise InputError("holds no records", file=input_file)
    keep = range(len(records)) if max_videos is None or len(records) <= max_videos else \
        np.unique(np.round(np.linspace(0, len(records) - 1, max_videos)).astype(int)).tolist()
    root = records_root(input_file)
    clips, paths, skipped = [], [], []
    for row in keep:
        record = records[row]
        try:
            frames, fps = read_all_frames(resolve_video(record["video_path"], root), backend)
        except VideoReadError as exc:
            logger.warning("probe: skipping %s (row %d of %s): %s", record["video_path"], row, input_file, exc.reason)
            skipped.append({"video_path": record["video_path"], "error": exc.reason})
            continue
        clips.append(Clip(frames, fps if fps > 0 else DEFAULT_FPS, record.get("prompt")))
        paths.append(record["video_path"])
    return clips, paths, skipped


class Scorer:
    """What the probe needs of a model: the model input of one video under a sampling, and scores of inputs.

    Inputs are compared (:func:`input_digest`) to find perturbations that leave the input unchanged.
    """

    def encode(self, clip: Clip, sampling: FrameSampling, prompt: str | None) -> Any:
        """The model input of `clip` (with `prompt`) sampled with `sampling`."""
        raise NotImplementedError

    def score(self, inputs: Sequence[Any]) -> list[float]:
        """One score per model input."""
        raise NotImplementedError


class ModelScorer(Scorer):
    """A reward model through the scoring path: the processed tensors (told each video's sampled rate), raw scores."""

    def __init__(self, model: Any, batch_size: int = 8) -> None:
        self.model, self.batch_size = model, batch_size
        self.collator = model.collator()
        self.encoders: dict[str, Any] = {}

    def encode(self, clip: Clip, sampling: FrameSampling, prompt: str | None) -> dict[str, Any]:
        """The processed tensors of one video (batch dimension 1)."""
        from solireward.scoring import VideoEncoder

        encoder = self.encoders.setdefault(repr(sampling), VideoEncoder(self.collator, sampling))
        return encoder(clip.frames, prompt, clip.fps)

    def score(self, inputs: Sequence[Any]) -> list[float]:
        """Raw scores, `batch_size` inputs per forward pass."""
        from solireward.scoring import Batch, score_batches

        batches = (Batch(list(range(i, min(i + self.batch_size, len(inputs)))),
                         self.collator.pad(inputs[i:i + self.batch_size]), [])
                   for i in range(0, len(inputs), self.batch_size))
        scores, _ = score_batches(self.model, batches, self.model.device, on_error="raise")
        return [scores[i] for i in range(len(inputs))]


class FrameScorer(Scorer):
    """A scorer of sampled frames, ``fn(frames, prompt) -> score``: its input is the sampled frames and prompt."""

    def __init__(self, fn: Callable[[np.ndarray, str | None], float]) -> None:
        self.fn = fn

    def encode(self, clip: Clip, sampling: FrameSampling, prompt: str | None) -> tuple[np.ndarray, str | None]:
        """The frames `sampling` takes from the clip, and the prompt."""
        return sample_frames(clip.frames, sampling, fps=clip.fps), prompt

    def score(self, inputs: Sequence[Any]) -> list[float]:
        """`fn` of each input."""
        return [float(self.fn(frames, prompt)) for frames, prompt in inputs]


def input_digest(value: Any) -> str:
    """A digest of a model input (tensors, arrays, strings, numbers, and dicts, lists or tuples of them)."""
    import hashlib

    import torch

    digest = hashlib.sha256()

    def add(item: Any) -> None:
        if isinstance(item, dict):
            for key in sorted(item):
                digest.update(f"<{key}>".encode())
                add(item[key])
        elif isinstance(item, (list, tuple)):
            digest.update(f"[{len(item)}".encode())
            for element in item:
                add(element)
        elif isinstance(item, (torch.Tensor, np.ndarray)):
            array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        else:
            digest.update(repr(item).encode())

    add(value)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Statistics


def change_stats(clean: np.ndarray, perturbed: np.ndarray, expected: str, threshold: float,
                 scale: float) -> dict[str, Any]:
    """Mean change in `scale` units with its 95 % interval over videos, share of rises, Spearman, verdict and
    the shortcut flag (see the module doc).

    `scale` is the standard deviation of the clean scores of all probed videos (0: changes stay raw).
    """
    from scipy.stats import spearmanr

    d = perturbed - clean
    per_video = d / scale if scale > 0 else d
    interval = mean_interval(per_video)
    effect = interval["mean"]
    constant = len(d) < 2 or np.ptp(clean) == 0 or np.ptp(perturbed) == 0
    rho = None if constant else float(spearmanr(clean, perturbed).statistic)
    tol = 1e-9 * max(1.0, float(np.abs(clean).max()))
    if expected == "invariant":
        flagged, verdict = abs(effect) > threshold, ("moves" if abs(effect) > threshold else "ok")
    elif expected == "lower":
        flagged = effect > -threshold
        verdict = "ok (drops)" if not flagged else ("rises" if effect > threshold else "no drop")
    elif expected == "no_gain":
        flagged, verdict = effect > threshold, ("pays" if effect > threshold else "ok")
    else:
        flagged, verdict = False, "reported"
    direction = beyond(interval["low"], interval["high"], threshold) if expected in IGNORE else 0
    shortcut = direction != 0 and (expected == "invariant" or direction > 0)
    return {"mean_change": float(d.mean()), "mean_change_std": effect,
            "mean_change_std_ci": None if interval["low"] is None else [interval["low"], interval["high"]],
            "share_up": float((d > tol).mean()), "spearman": rho, "flagged": bool(flagged), "verdict": verdict,
            "shortcut": bool(shortcut)}


_CHUNK = 32  # videos perturbed, encoded and scored together: bounds the frames and inputs held in memory


def _encode_and_score(scorer: Scorer, items: Iterable[tuple[Clip, FrameSampling, str | None]],
                      clean: Sequence[str] | None = None, skip: Sequence[bool] = ()
                      ) -> tuple[list[str], dict[int, float]]:
    """The digest of each item's model input, and the scores of the items whose digest differs from `clean`
    (every item without it), `_CHUNK` videos at a time. An item `skip` flags is drawn from `items` (so the
    perturbation's random draws stay as they are) but neither encoded nor scored (digest "")."""
    digests: list[str] = []
    scores: dict[int, float] = {}
    chunk: list[tuple[int, Any]] = []

    def flush() -> None:
        scores.update(zip([i for i, _ in chunk], scorer.score([x for _, x in chunk])))
        chunk.clear()

    for i, (clip, sampling, prompt) in enumerate(items):
        if i < len(skip) and skip[i]:
            digests.append("")
            continue
        inputs = scorer.encode(clip, sampling, prompt)
        digests.append(input_digest(inputs))
        if clean is None or digests[-1] != clean[i]:
            chunk.append((i, inputs))
            if len(chunk) == _CHUNK:
                flush()
    if chunk:
        flush()
    return digests, scores


def probe_scorer(scorer: Scorer, clips: Sequence[Clip], sampling: FrameSampling, threshold: float = 0.25,
                 seed: int = 0, perturbations: Sequence[Perturbation] = PERTURBATIONS,
                 shown: Mapping[str, Sequence[bool]] | None = None) -> dict[str, Any]:
    """Score `clips` clean and under each perturbation; the per-perturbation statistics (see the module doc).

    A video whose perturbed model input equals its clean input, or that `shown` (perturbation name: a flag per
    clip) says already shows the perturbation's nuisance, is left out of that perturbation's statistics; a
    perturbation that changes no other video's input is "not tested", with the reason.
    """
    if len(clips) < 2:
        raise InputError(f"the probe needs at least 2 readable videos, got {len(clips)}", field="input_file")
    clean_digests, clean_scores = _encode_and_score(scorer, ((c, sampling, c.prompt) for c in clips))
    clean = np.asarray([clean_scores[i] for i in range(len(clips))], dtype=float)
    scale = float(clean.std())
    rows = []
    for p in perturbations:
        started = time.perf_counter()
        rng = np.random.default_rng([seed, zlib.crc32(p.name.encode())])  # the same draws whichever others run
        prompts = [c.prompt for c in clips]
        if p.name == "prompt_swap":
            prompts = swapped_prompts(prompts)
            if prompts is None:
                logger.info("probe: every video has the same prompt; prompt_swap skipped")
                continue
        items = ((p.apply(c, rng) if p.apply else c, p.sampling(sampling, c) if p.sampling else sampling, q)
                 for c, q in zip(clips, prompts))
        left_out = [bool(flag) for flag in (shown or {}).get(p.name, [False] * len(clips))]
        _, scores = _encode_and_score(scorer, items, clean_digests, left_out)
        tested = sorted(scores)
        row: dict[str, Any] = {"name": p.name, "expected": p.expected, "description": p.description,
                               "seconds": round(time.perf_counter() - started, 2), "n_tested": len(tested),
                               "n_unchanged": len(clips) - sum(left_out) - len(tested), "n_shown": sum(left_out)}
        if not tested:
            rows.append({**row, "tested": False, "verdict": "not tested", "flagged": False, "shortcut": False,
                         "reason": f"the model's input (the processed tensors) equals the clean input for all "
                                   f"{len(clips) - sum(left_out)} videos that do not already show it: "
                                   f"{p.unchanged_hint}",
                         "mean_change": None, "mean_change_std": None, "mean_change_std_ci": None,
                         "share_up": None, "spearman": None, "per_video_change_std": [None] * len(clips)})
            continue
        perturbed = np.asarray([scores[i] for i in tested], dtype=float)
        per_video: list[float | None] = [None] * len(clips)
        for i in tested:
            per_video[i] = float((scores[i] - clean[i]) / scale) if scale > 0 else float(scores[i] - clean[i])
        rows.append({**row, "tested": True, "reason": None,
                     **change_stats(clean[tested], perturbed, p.expected, threshold, scale),
                     "per_video_change_std": per_video})
    return {"n_videos": len(clips), "clean": {"mean": float(clean.mean()), "std": scale},
            "threshold": threshold, "expected": EXPECTED, "perturbations": rows}


def shown_cues(table: str, paths: Sequence[str], input_file: str) -> dict[str, list[bool]]:
    """Per perturbation that shows a planted cue (``Cue.shown_by``), whether each probed video (its `paths` as
    the record file `input_file` gives them) already shows that cue, by `table` (see ``--shown``). A cue without
    a column in the table is taken as shown by none; a probed video without a row is an error."""
    import csv
    import os

    from solireward.data.synthetic.plan import CUES
    from solireward.inference import records_root, resolve_video

    folder = Path(table).parent
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", file=table) from exc
    if not rows or "video_path" not in rows[0]:
        raise InputError("expected a CSV with a video_path column and one column per planted cue", file=table)
    values = {os.path.realpath(folder / row["video_path"]): row for row in rows}
    root = records_root(input_file)
    found = []
    for path in paths:
        row = values.get(os.path.realpath(resolve_video(path, root)))
        if row is None:
            raise InputError(f"has no row for the probed video {path!r} (expected one per video of {input_file})",
                             file=table, field="video_path")
        found.append(row)
    out = {}
    for cue in CUES:
        if cue.shown_by and cue.name in rows[0]:
            try:
                flags = [float(row[cue.name]) != cue.neutral for row in found]
            except ValueError as exc:
                raise InputError(f"expected numbers in column {cue.name!r}: {exc}", file=table,
                                 field=cue.name) from exc
            out |= dict.fromkeys(cue.shown_by, flags)
    return out


def probe_matrix(results: Sequence[dict[str, Any]], name: str) -> np.ndarray | None:
    """(replicates, videos) per-video shifts (clean std) of perturbation `name` in K probe results of one cell,
    NaN where not tested; None when a result lacks it or the results probed different videos."""
    if len({tuple(r["videos"]) for r in results}) != 1:
        return None
    rows = []
    for result in results:
        found = next((p for p in result["perturbations"] if p["name"] == name), None)
        if found is None or not found.get("tested", True):
            return None
        rows.append([np.nan if v is None else v for v in found["per_video_change_std"]])
    return np.array(rows, dtype=float)


def compare_probes(treated: dict[str, Any] | Sequence[dict[str, Any]],
                   reference: dict[str, Any] | Sequence[dict[str, Any]], confidence: float = CONFIDENCE
                   ) -> dict[str, dict[str, Any]]:
    """Per perturbation, the paired comparison of two cells probed on the same videos (each in its own clean-std
    units), over the videos tested by every result: ``{name: {"difference", "low", "high", "p", "n", ...}}``.
    A side is one probe result or the results of its K trainings (seeds): then the interval is over videos and
    seeds (``intervals.replicated_comparison``, the paired t-test with one training a side)."""
    sides = [[side] if isinstance(side, dict) else list(side) for side in (treated, reference)]
    if len({tuple(r["videos"]) for side in sides for r in side}) != 1:
        raise InputError("the two probes were run on different videos; a paired comparison needs the same ones",
                         field="videos")
    out = {}
    for row in sides[0][0]["perturbations"]:
        a, b = probe_matrix(sides[0], row["name"]), probe_matrix(sides[1], row["name"])
        if a is None or b is None:
            continue
        both = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
        if both.any():
            out[row["name"]] = replicated_comparison(a[:, both], b[:, both], confidence)
    return out


def run_probe(config: ProbeConfig, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Load the model and the videos, probe them; the result written as probe.json (see the command)."""
    from solireward.models import RewardModel

    start = time.perf_counter()
    model = RewardModel.from_pretrained(config.model_name_or_path)
    clips, paths, skipped = load_clips(config.input_file, config.max_videos, config.video_backend)
    shown = shown_cues(config.shown, paths, config.input_file) if config.shown else None
    sampling = FrameSampling.from_dict(dict(model.config.sampling))
    result = probe_scorer(ModelScorer(model, config.batch_size), clips, sampling, config.threshold, config.seed,
                          select(config.perturbations), shown)
    return {"model": config.model_name_or_path, "input_file": config.input_file, "videos": paths,
            "skipped": skipped, "shown_file": config.shown, "reward_task": model.config.reward_task,
            "sampling": sampling.to_dict(),
            "tags": tags or {}, **result, "seconds": round(time.perf_counter() - start, 1)}


def probe_markdown(result: dict[str, Any]) -> str:
    """The probe result as a Markdown table with its thresholds."""
    t = result["threshold"]
    lines = [f"# Stress probe: {result.get('model', '')}", "",
             f"{result['n_videos']} videos; clean score mean {result['clean']['mean']:.4g}, "
             f"std {result['clean']['std']:.4g}. Change = mean(perturbed − clean) / std(clean) over the videos "
             "whose model input the perturbation changes, with its 95 % t interval over those videos.", "",
             f"Verdicts (t = {t:g} clean std): *invariant* ok when |change| ≤ {t:g}; *lower* ok when change ≤ "
             f"−{t:g}; *no_gain* ok when change ≤ {t:g}; *report*: not judged; *not tested*: the model's input "
             "is unchanged for every video. **Shortcut**: a nuisance the score should ignore (invariant, no_gain) "
             f"whose 95 % interval lies wholly beyond ±{t:g} (no_gain: above {t:g}).", "",
             markdown_table(["perturbation", "what", "expected", "videos", "change (std)", "95 % CI", "share up",
                             "Spearman", "verdict", "shortcut"],
                            [[row["name"], row["description"], row["expected"], row["n_tested"],
                              markdown_cell(row["mean_change_std"], 2, signed=True),
                              "" if row["mean_change_std_ci"] is None
                              else "[{:+.2f}, {:+.2f}]".format(*row["mean_change_std_ci"]),
                              markdown_cell(row["share_up"], 2), markdown_cell(row["spearman"], 2, signed=True),
                              f"**{row['verdict']}**" if row["flagged"] else row["verdict"],
                              "**shortcut**" if row.get("shortcut") else ""]
                             for row in result["perturbations"]], n_text_columns=3)]
    shortcuts = [row["name"] for row in result["perturbations"] if row.get("shortcut")]
    lines += ["", f"Shortcut flags: {', '.join(shortcuts)}." if shortcuts else "No shortcut flag."]
    shown = [f"{row['name']} ({row['n_shown']})" for row in result["perturbations"] if row.get("n_shown")]
    if shown:
        lines += ["", "Left out of a planted cue's own perturbation, as they already show it (--shown): "
                  + ", ".join(shown) + " videos."]
    untested = [row for row in result["perturbations"] if not row["tested"]]
    if untested:
        lines += [""] + [f"- {row['name']} not tested: {row['reason']}." for row in untested]
    if result.get("skipped"):
        lines += ["", f"{len(result['skipped'])} unreadable videos skipped: "
                  + ", ".join(r["video_path"] for r in result["skipped"]) + "."]
    return "\n".join(lines) + "\n"
