"""Score videos with a trained reward model (`solireward infer`).

Input (``--input_file``): a record file (.json list, .jsonl, .csv or .parquet, read by
:func:`solireward.io.read_records`) of ``{"video_path": ..., "prompt": ...}`` (``prompt`` optional,
every other key kept), or a folder whose ``*.mp4`` files (sorted by name) become
the records. Relative paths are resolved against the input file's folder (or ``--video_root``).

Output (``--output_file``, JSON, written atomically): the same records in the same order, each with
``score`` (the raw reward) and ``score_norm`` = (score - score_mean) / score_std using the mean and
std stored in the checkpoint, or with ``error`` (why the video could not be scored) and no score.
With several ``--model_name_or_path`` folders, ``score`` and ``score_norm`` are both the models'
conservative reward (``--ensemble``: mean - λ·std, mean or min of their ``score_norm``, see
:mod:`solireward.conservative`) and ``ensemble_scores`` lists each model's ``score_norm``.

Robustness: videos are decoded inside DataLoader workers (``--num_workers``) while the model runs.
A decode failure is caught per video inside the worker; the batch is built from the readable videos
only, so one bad file never stops the run nor loses other scores. Exit status: 0 when every video
was scored, 3 when some could not be (a summary line ``scored N, failed M`` goes to stderr), 2 on
bad input.

Frame sampling: by default the settings stored in the checkpoint at training time; any of them can
be overridden (``--num_frames``, ``--fps``, ``--height`` ...), which logs a warning, because reward
models are known to be gamed through fps, frame count and resolution.

On CPU, unless ``OMP_NUM_THREADS`` is set, the model gets one thread per core left after one core
per decoding worker (at least one), so the workers and the model do not oversubscribe the cores.

Sharding: under ``torchrun --nproc_per_node K``, rank r scores the records whose index i satisfies
i % K == r (on ``cuda:LOCAL_RANK`` when GPUs are used), writes a shard file beside the output, and
rank 0 merges the shards in the original order into ``--output_file`` and removes them. The ranks
synchronise through a gloo process group (only a barrier; no tensors are exchanged), so on several
nodes the output folder must be shared. Rank 0 prints the summary and returns 3 when any video failed;
torchrun reports any non-zero worker status as a failure of its own (exit status 1).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from solireward.config import arg
from solireward.conservative import EnsembleOptions, conservative_reward
from solireward.data.video import BACKENDS, FrameSampling
from solireward.errors import EXIT_SOME_FAILED, ConfigError, InputError
from solireward.io import read_records, write_json
from solireward.models.backbones import ATTN_IMPLEMENTATIONS, TORCH_DTYPES
from solireward.sampling import apply_overrides
from solireward.scoring import score_videos

logger = logging.getLogger(__name__)

_RESULT_KEYS = ("score", "score_norm", "error")
_DIST_TIMEOUT = datetime.timedelta(hours=12)  # ranks wait for the slowest one at the merge barrier
_MAX_LOGGED_FAILURES = 20


@dataclasses.dataclass
class InferenceConfig:
    """Options of `solireward infer` (score videos with a trained reward model)."""

    model_name_or_path: list[str] = arg("folder of a trained reward model (written by `solireward train` or "
                                        "RewardModel.save_pretrained); several folders: their normalised scores "
                                        "are combined by --ensemble (solireward.conservative)")
    input_file: str = arg("records to score: a JSON list or JSONL of {\"video_path\", \"prompt\" "
                          "(optional), ...}, or a folder of .mp4 files")
    output_file: str = arg("JSON output: the input records, in order, plus score and score_norm, or "
                           "error for a video that could not be read")
    video_root: str | None = arg("folder that relative video_path values are resolved against; "
                                 "None means the input file's folder", None)
    batch_size: int = arg("videos per forward pass", 8)
    num_workers: int = arg("DataLoader worker processes decoding videos while the model runs "
                           "(0: decode in the main process)", 2)
    prefetch_factor: int = arg("batches each worker decodes ahead (with --num_workers > 0)", 2)
    device: str = arg("auto (cuda if available, else cpu), cpu, cuda or cuda:N; under torchrun, "
                      "cuda means cuda:LOCAL_RANK", "auto")
    torch_dtype: str = arg("weights dtype: auto keeps the checkpoint's dtype on GPU and uses "
                           "float32 on CPU", "auto", choices=TORCH_DTYPES)
    attn_implementation: str = arg("attention kernel of the backbone (flash_attention_2 needs flash-attn "
                                   "and a GPU)", "sdpa", choices=ATTN_IMPLEMENTATIONS)
    video_backend: str = arg("video decoder (auto: decord, falling back to pyav)", "auto", choices=BACKENDS)
    decode_timeout: float = arg("seconds allowed to decode one video before it counts as failed", 60.0)
    progress: bool = arg("show the progress bar even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        if not self.model_name_or_path:
            raise ConfigError("expected one or more reward-model folders", field="model_name_or_path")
        if self.batch_size < 1:
            raise ConfigError("expected a positive integer", field="batch_size")
        if self.num_workers < 0:
            raise ConfigError("expected 0 or more", field="num_workers")
        if self.prefetch_factor < 1:
            raise ConfigError("expected a positive integer", field="prefetch_factor")
        if not self.decode_timeout > 0:
            raise ConfigError("expected a positive number of seconds", field="decode_timeout")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

def load_records(input_file: str | os.PathLike) -> list[dict[str, Any]]:
    """The records to score: a record file (:func:`solireward.io.read_records`) or a folder of .mp4 files (sorted)."""
    path = Path(input_file)
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() == ".mp4" and not p.is_dir())
        if not videos:
            raise InputError("folder holds no .mp4 files", file=str(path))
        return [{"video_path": _absolute(p)} for p in videos]
    records = read_records(path)
    validate_records(records, source=str(path))
    return records


def records_root(input_file: str | os.PathLike, video_root: str | os.PathLike | None = None) -> Path | None:
    """The folder relative video paths are read from: `video_root`, else the record file's folder."""
    path = Path(input_file)
    return Path(video_root) if video_root else (None if path.is_dir() else path.parent)


def _absolute(path: Path) -> str:
    """`path` resolved; a symlink loop stays as named (absolute), so reading it fails for that record alone."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def validate_records(records: Sequence[Any], source: str | None = None) -> None:
    """Check that each record is an object with a non-empty `video_path` and an optional string `prompt`."""
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InputError(f"record {index} is not an object", file=source, row=index)
        video_path = record.get("video_path")
        if not isinstance(video_path, str) or not video_path.strip():
            raise InputError(f"record {index} has no 'video_path' (expected a non-empty string)",
                             file=source, row=index, field="video_path")
        prompt = record.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"record {index}: expected a string or null, got {type(prompt).__name__}",
                             file=source, row=index, field="prompt")


def resolve_video(video_path: str, root: Path | None) -> str:
    """A record's `video_path`, read from `root` when it is relative."""
    path = Path(video_path).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    return str(path)


def score_records(model: Any, records: Sequence[Mapping[str, Any]], *,
                  sampling: FrameSampling | None = None, batch_size: int = 8, num_workers: int = 2,
                  prefetch_factor: int = 2, video_backend: str = "auto", decode_timeout: float = 60.0,
                  video_root: str | os.PathLike | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Score each record's video with `model` (on its current device and dtype), through the scoring path.

    Returns new records, in order: the input keys plus ``score`` and ``score_norm``, or plus
    ``error`` (the reason the video could not be read) with no score. ``sampling`` defaults to the
    settings stored in the model's config. Never raises for an unreadable video.
    """
    validate_records(records)
    if video_backend == "decord" and importlib.util.find_spec("decord") is None:
        raise InputError("the 'decord' video backend is not installed: install decord2 or use "
                         "the pyav or auto backend", field="video_backend")
    root = Path(video_root) if video_root is not None else None
    scores, errors = score_videos(model, [resolve_video(r["video_path"], root) for r in records],
                                  [r.get("prompt") for r in records], sampling=sampling, batch_size=batch_size,
                                  num_workers=num_workers, prefetch_factor=prefetch_factor, backend=video_backend,
                                  timeout_s=decode_timeout, on_error="record", progress=progress)
    ordered = sorted(scores)
    normalised = dict(zip(ordered, (float(v) for v in model.normalise([scores[i] for i in ordered]))))
    out = []
    for i, record in enumerate(records):
        row = {k: v for k, v in record.items() if k not in _RESULT_KEYS}
        if i in scores:
            row["score"], row["score_norm"] = scores[i], normalised[i]
        else:
            row["error"] = errors[i]
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------

def _pick_device(name: str, local_rank: int, distributed: bool) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and distributed:
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine", field="device")
        torch.cuda.set_device(device)
    return device


def _pick_dtype(name: str, device: Any) -> str:
    """The dtype to load: `name`, except that auto means float32 on CPU (bf16/fp16 are slow there)."""
    return "float32" if name == "auto" and device.type == "cpu" else name


def cpu_threads_for_model(num_workers: int) -> int:
    """Intra-op threads for a model on CPU that leave one core to each decoding worker (at least 1).

    Oversubscribed cores make torch's threads wait on each other: on a busy shared 2-core machine a
    tiny model ran about 6 videos/s with 2 threads and about 100 with 1 (bench/bench_infer.py).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - num_workers)


def _shard_path(output: Path, rank: int, world: int) -> Path:
    return output.with_name(f".{output.name}.shard-{rank:05d}-of-{world:05d}.json")


def combine_records(per_model: Sequence[Sequence[Mapping[str, Any]]], ensemble: EnsembleOptions
                    ) -> list[dict[str, Any]]:
    """The scored records of several models as one: ``score`` = ``score_norm`` = their conservative reward
    (:func:`solireward.conservative.conservative_reward` of the models' ``score_norm``), ``ensemble_scores`` =
    each model's ``score_norm``; a video any model could not score gets that model's ``error``."""
    out = []
    for rows in zip(*per_model):
        row = {k: v for k, v in rows[0].items() if k not in _RESULT_KEYS}
        failed = next(((k, r["error"]) for k, r in enumerate(rows) if "error" in r), None)
        if failed is not None:
            row["error"] = f"model {failed[0]}: {failed[1]}"
        else:
            norms = [r["score_norm"] for r in rows]
            reward = float(conservative_reward([[v] for v in norms], ensemble.ensemble, ensemble.ensemble_lambda)[0])
            row.update(score=reward, score_norm=reward, ensemble_scores=norms)
        out.append(row)
    return out


def infer(config: InferenceConfig, overrides: Mapping[str, Any] | None = None,
          ensemble: EnsembleOptions | None = None) -> int:
    """Score the records of `config.input_file` into `config.output_file`, with the checkpoints' frame
    sampling changed by `overrides` (checked FrameSampling values) and several models' scores combined by
    `ensemble`; returns 0, or EXIT_SOME_FAILED when some videos could not be scored."""
    import torch

    from solireward import distributed as D
    from solireward.models import RewardModel

    rank, world, local_rank = D.launch_env()
    distributed = world > 1
    input_path = Path(config.input_file)
    records = load_records(input_path)
    root = records_root(input_path, config.video_root)
    model_dirs = [Path(folder) for folder in config.model_name_or_path]
    for model_dir in model_dirs:
        if not model_dir.is_dir():
            raise InputError("reward model folder does not exist", file=str(model_dir))
    device = _pick_device(config.device, local_rank, distributed)
    # the ranks only meet at the barrier before the merge: gloo, and a timeout for the slowest rank
    env = D.setup(device=device, backend="gloo", timeout=_DIST_TIMEOUT)
    try:
        if device.type == "cpu" and config.num_workers > 0 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(cpu_threads_for_model(config.num_workers))
        mine = list(range(rank, len(records), world))
        if distributed:
            logger.info("rank %d of %d scores %d of %d records on %s", rank, world, len(mine),
                        len(records), device)
        shown = (config.progress or sys.stderr.isatty()) and rank == 0
        per_model = []
        for model_dir in model_dirs:
            model = RewardModel.from_pretrained(model_dir, torch_dtype=_pick_dtype(config.torch_dtype, device),
                                                attn_implementation=config.attn_implementation, device=device)
            if model.config.collapsed and rank == 0:
                logger.warning("%s: %s, and `serve` refuses it", model_dir, model.collapse_note())
            sampling = apply_overrides(model.config.sampling, overrides or {}, warn=rank == 0)
            per_model.append(score_records(
                model, [records[i] for i in mine], sampling=sampling, batch_size=config.batch_size,
                num_workers=config.num_workers, prefetch_factor=config.prefetch_factor,
                video_backend=config.video_backend, decode_timeout=config.decode_timeout, video_root=root,
                progress=shown))
            del model
        results = per_model[0] if len(per_model) == 1 else combine_records(per_model, ensemble or EnsembleOptions())
        output = Path(config.output_file)
        if not distributed:
            merged = results
        else:
            write_json(_shard_path(output, rank, world), [[i, r] for i, r in zip(mine, results)], indent=None)
            D.barrier(env)
            if rank != 0:
                return 0
            merged = _merge_shards(output, world, len(records))
        write_json(output, merged)
        if distributed:
            for r in range(world):
                _shard_path(output, r, world).unlink()
    finally:
        D.cleanup(env)
    return _summarise(merged, output)


def _merge_shards(output: Path, world: int, n_records: int) -> list[dict[str, Any]]:
    merged: list[dict[str, Any] | None] = [None] * n_records
    for r in range(world):
        for index, record in json.loads(_shard_path(output, r, world).read_text(encoding="utf-8")):
            merged[index] = record
    missing = [i for i, rec in enumerate(merged) if rec is None]
    if missing:
        raise RuntimeError(f"shards of {output} lack records {missing[:10]}")
    return typing.cast(list, merged)


def _summarise(results: Sequence[Mapping[str, Any]], output: Path) -> int:
    failed = [r for r in results if "error" in r]
    for record in failed[:_MAX_LOGGED_FAILURES]:
        logger.warning("could not score %s: %s", record["video_path"], record["error"])
    if len(failed) > _MAX_LOGGED_FAILURES:
        logger.warning("... and %d more unreadable videos (see 'error' in %s)",
                       len(failed) - _MAX_LOGGED_FAILURES, output)
    print(f"solireward infer: scored {len(results) - len(failed)}, failed {len(failed)} -> {output}",
          file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0
