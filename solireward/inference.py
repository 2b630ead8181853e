"""`solireward infer`: score videos with a trained reward model.

Input (``--input_file``): a JSON list or JSON Lines of records ``{"video_path": ..., "prompt": ...}``
(``prompt`` optional, every other key kept), or a folder whose ``*.mp4`` files (sorted by name) become
the records. Relative paths are resolved against the input file's folder (or ``--video_root``).

Output (``--output_file``, JSON, written atomically): the same records in the same order, each with
``score`` (the raw reward) and ``score_norm`` = (score - score_mean) / score_std using the mean and
std stored in the checkpoint, or with ``error`` (why the video could not be scored) and no score.

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

import argparse
import dataclasses
import datetime
import importlib.util
import json
import logging
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from solireward.config import arg, build_dataclass, load_yaml
from solireward.data.video import FrameSampling, read_video
from solireward.errors import InputError, VideoReadError
from solireward.io import read_json, read_jsonl, write_json

logger = logging.getLogger(__name__)

EXIT_SOME_FAILED = 3
_RESULT_KEYS = ("score", "score_norm", "error")
_DIST_TIMEOUT = datetime.timedelta(hours=12)  # ranks wait for the slowest one at the merge barrier
_MAX_LOGGED_FAILURES = 20


@dataclasses.dataclass
class InferenceConfig:
    """Options of `solireward infer` (score videos with a trained reward model)."""

    model_name_or_path: str = arg("folder of a trained reward model (written by `solireward train` "
                                  "or RewardModel.save_pretrained)")
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
                           "float32 on CPU", "auto", choices=("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str = arg("attention kernel of the backbone (flash_attention_2 needs flash-attn "
                                   "and a GPU)", "sdpa", choices=("sdpa", "eager", "flash_attention_2"))
    video_backend: str = arg("video decoder (auto: decord, falling back to pyav)", "auto",
                             choices=("decord", "pyav", "auto"))
    decode_timeout: float = arg("seconds allowed to decode one video before it counts as failed", 60.0)
    progress: bool = arg("show the progress bar even when stderr is not a terminal", False)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward infer`."""
    from solireward.config import add_dataclass_arguments

    parser.epilog = (f"Exit status: 0 when every video was scored, {EXIT_SOME_FAILED} when some could not be "
                     "read (their records hold 'error'), 2 on bad input. Multi-GPU: torchrun --nproc_per_node K "
                     "-m solireward.cli infer ... (each rank scores every K-th record; rank 0 merges).")
    parser.add_argument("--config", default=None, help="YAML file of option values (CLI flags win)")
    add_dataclass_arguments(parser, InferenceConfig, "inference")
    group = parser.add_argument_group(
        "frame sampling overrides",
        "default: the settings stored in the checkpoint at training time; overriding any of them "
        "logs a warning (reward models can be gamed through fps, frame count and resolution)")
    hints = typing.get_type_hints(FrameSampling)
    for f in dataclasses.fields(FrameSampling):
        is_list = typing.get_origin(hints[f.name]) in (list, tuple)
        group.add_argument(f"--{f.name}", dest=f.name, default=argparse.SUPPRESS, type=str,
                           nargs="+" if is_list else None, choices=f.metadata.get("choices"),
                           metavar=None if f.metadata.get("choices") else f.name.upper(),
                           help=f"{f.metadata.get('help', f.name)} (default: the checkpoint's value)")


def run(args: argparse.Namespace) -> int:
    """Score the input records and write the output file; returns 0, or 3 when some failed."""
    config, overrides = _parse_options(args)
    return infer(config, overrides)


def _parse_options(args: argparse.Namespace) -> tuple[InferenceConfig, dict[str, Any]]:
    """Layer defaults < YAML < CLI; frame-sampling keys are kept apart as overrides."""
    config_file = getattr(args, "config", None)
    values = load_yaml(config_file) if config_file else {}
    sampling_names = {f.name for f in dataclasses.fields(FrameSampling)}
    overrides = {k: v for k, v in values.items() if k in sampling_names}
    merged = {k: v for k, v in values.items() if k not in sampling_names}
    inference_names = {f.name for f in dataclasses.fields(InferenceConfig)}
    cli = vars(args)
    overrides.update({k: v for k, v in cli.items() if k in sampling_names})
    merged.update({k: v for k, v in cli.items() if k in inference_names})
    source = f"{config_file} / command line" if config_file else "command line"
    config = build_dataclass(InferenceConfig, merged, source)
    if overrides:  # check names and types now, naming the file, not after the model has loaded
        checked = build_dataclass(FrameSampling, overrides, source)
        overrides = {k: getattr(checked, k) for k in overrides}
    if config.batch_size < 1:
        raise InputError("expected a positive integer", file=source, field="batch_size")
    if config.num_workers < 0:
        raise InputError("expected 0 or more", file=source, field="num_workers")
    if config.prefetch_factor < 1:
        raise InputError("expected a positive integer", file=source, field="prefetch_factor")
    if not config.decode_timeout > 0:
        raise InputError("expected a positive number of seconds", file=source, field="decode_timeout")
    return config, overrides


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

def load_records(input_file: str | os.PathLike) -> list[dict[str, Any]]:
    """Read the records to score: a JSON list, JSON Lines, or a folder of .mp4 files (sorted)."""
    path = Path(input_file)
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() == ".mp4" and not p.is_dir())
        if not videos:
            raise InputError("folder holds no .mp4 files", file=str(path))
        return [{"video_path": str(p.resolve())} for p in videos]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = read_jsonl(path)
    elif suffix == ".json":
        records = read_json(path)
        if not isinstance(records, list):
            raise InputError("expected a JSON list of records", file=str(path))
    else:
        raise InputError(f"unsupported input '{suffix}'; expected a .json or .jsonl file or a folder "
                         "of .mp4 files", file=str(path))
    validate_records(records, source=str(path))
    return records


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


def _resolve(video_path: str, root: Path | None) -> str:
    path = Path(video_path).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    return str(path)


# --------------------------------------------------------------------------------------------
# Decoding in DataLoader workers
# --------------------------------------------------------------------------------------------

class _VideoDataset:
    """Map-style dataset: item i -> (index, encoded inputs or None, prompt, error reason or None).

    Decoding and the processor's encoding both run here, inside the worker, and their failures are
    caught per video (a corrupt file, or frames the processor rejects, such as an aspect ratio
    above 200), so they travel to the main process as an error marker instead of an exception
    that would stop the DataLoader and lose the other videos' scores.
    """

    def __init__(self, items: Sequence[tuple[int, str, str | None]], sampling: FrameSampling,
                 backend: str, timeout_s: float, collator: Any) -> None:
        self.items, self.sampling, self.backend, self.timeout_s = list(items), sampling, backend, timeout_s
        self.collator = collator

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None, str | None]:
        index, path, prompt = self.items[i]
        try:
            frames = read_video(path, self.sampling, backend=self.backend, timeout_s=self.timeout_s)
        except VideoReadError as exc:
            return index, None, prompt, exc.reason
        except InputError:  # a setting, not this video, is wrong (e.g. the backend is not installed)
            raise
        except Exception as exc:  # noqa: BLE001 - any other decoder failure is reported for this video only
            return index, None, prompt, f"{type(exc).__name__}: {exc}"
        try:
            encoded = self.collator.encode(frames, prompt)
        except Exception as exc:  # noqa: BLE001 - the processor rejected this video's frames
            return index, None, prompt, f"the processor could not prepare its frames ({type(exc).__name__}: {exc})"
        return index, encoded, prompt, None


class _GoodSamplesCollate:
    """Builds one model batch from the readable samples; unreadable ones are passed on as failures."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, samples: list[tuple[int, Any, str | None, str | None]]) -> dict[str, Any]:
        good = [s for s in samples if s[3] is None]
        inputs = self.collator.pad([s[1] for s in good]) if good else None
        return {"index": [s[0] for s in good], "inputs": inputs,
                "failed": [(s[0], s[3]) for s in samples if s[3] is not None]}


def video_loader(collator: Any, items: Sequence[tuple[int, str, str | None]], sampling: FrameSampling, *,
                 batch_size: int = 8, num_workers: int = 2, prefetch_factor: int = 2,
                 video_backend: str = "auto", decode_timeout: float = 60.0, pin_memory: bool = False) -> Any:
    """A DataLoader over `(index, video_path, prompt)` items that decodes and collates in its workers.

    Each batch is ``{"index": [...], "inputs": collator.pad(encoded videos) or None, "failed": [(index,
    reason), ...]}``: ``inputs`` holds the readable videos of the batch, in the order of ``index``.
    """
    from torch.utils.data import DataLoader

    return DataLoader(_VideoDataset(items, sampling, video_backend, decode_timeout, collator), batch_size=batch_size,
                      shuffle=False, num_workers=num_workers, collate_fn=_GoodSamplesCollate(collator),
                      pin_memory=pin_memory, prefetch_factor=prefetch_factor if num_workers > 0 else None)


def _move(inputs: Mapping[str, Any], device: Any) -> dict[str, Any]:
    return {key: value.to(device, non_blocking=True) for key, value in inputs.items()}


def score_records(model: Any, records: Sequence[Mapping[str, Any]], *,
                  sampling: FrameSampling | None = None, batch_size: int = 8, num_workers: int = 2,
                  prefetch_factor: int = 2, video_backend: str = "auto", decode_timeout: float = 60.0,
                  video_root: str | os.PathLike | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Score each record's video with `model` (on its current device and dtype).

    Returns new records, in order: the input keys plus ``score`` and ``score_norm``, or plus
    ``error`` (the reason the video could not be read) with no score. ``sampling`` defaults to the
    settings stored in the model's config. Never raises for an unreadable video.
    """
    import torch
    from tqdm import tqdm

    validate_records(records)
    if video_backend == "decord" and importlib.util.find_spec("decord") is None:
        raise InputError("the 'decord' video backend is not installed (it has wheels for x86-64 only); "
                         "install decord or use --video_backend pyav or auto", field="video_backend")
    if sampling is None:
        sampling = FrameSampling.from_dict(model.config.sampling)
    root = Path(video_root) if video_root is not None else None
    items = [(i, _resolve(r["video_path"], root), r.get("prompt")) for i, r in enumerate(records)]
    device = model.device
    loader = video_loader(model.collator(), items, sampling, batch_size=batch_size, num_workers=num_workers,
                          prefetch_factor=prefetch_factor, video_backend=video_backend,
                          decode_timeout=decode_timeout, pin_memory=device.type == "cuda")
    scores: dict[int, float] = {}
    errors: dict[int, str] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(items), desc="scoring", unit=" videos",
                                          disable=not progress) as bar:
            for batch in loader:
                errors.update(batch["failed"])
                if batch["index"]:
                    values = model(**_move(batch["inputs"], device)).float().cpu().tolist()
                    for index, value in zip(batch["index"], values):
                        if math.isfinite(value):
                            scores[index] = value
                        else:
                            errors[index] = f"the model returned a non-finite score ({value})"
                bar.update(len(batch["index"]) + len(batch["failed"]))
                bar.set_postfix(failed=len(errors), refresh=False)
    finally:
        model.train(was_training)
    ordered = [scores[i] for i in sorted(scores)]
    normalised = dict(zip(sorted(scores), (float(v) for v in model.normalise(ordered)))) if ordered else {}
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

def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) otherwise."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


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


def resolve_sampling(stored: Mapping[str, Any], overrides: Mapping[str, Any], source: str = "command line",
                     warn: bool = True) -> FrameSampling:
    """The checkpoint's frame sampling with `overrides` applied; warns (if `warn`) about every changed setting."""
    base = FrameSampling.from_dict(dict(stored))
    if not overrides:
        return base
    sampling = build_dataclass(FrameSampling, {**base.to_dict(), **overrides}, source)
    before, after = base.to_dict(), sampling.to_dict()
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    for key, (old, new) in changed.items() if warn else ():
        logger.warning("frame setting %s=%r differs from the value stored at training time (%r): "
                       "reward models are known to be gamed through fps, frame count and resolution, "
                       "so these scores may not be comparable with the training-time behaviour",
                       key, new, old)
    return sampling


def _shard_path(output: Path, rank: int, world: int) -> Path:
    return output.with_name(f".{output.name}.shard-{rank:05d}-of-{world:05d}.json")


def infer(config: InferenceConfig, overrides: Mapping[str, Any] | None = None) -> int:
    """Run `solireward infer` with parsed options; returns the exit status (0, or 3 if some failed)."""
    import torch

    from solireward.models import RewardModel

    rank, world, local_rank = _dist_env()
    distributed = world > 1
    input_path = Path(config.input_file)
    records = load_records(input_path)
    root = Path(config.video_root) if config.video_root else (None if input_path.is_dir() else input_path.parent)
    model_dir = Path(config.model_name_or_path)
    if not model_dir.is_dir():
        raise InputError("reward model folder does not exist", file=str(model_dir))
    device = _pick_device(config.device, local_rank, distributed)
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=_DIST_TIMEOUT)
    try:
        if device.type == "cpu" and config.num_workers > 0 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(cpu_threads_for_model(config.num_workers))
        model = RewardModel.from_pretrained(model_dir, torch_dtype=_pick_dtype(config.torch_dtype, device),
                                            attn_implementation=config.attn_implementation, device=device)
        sampling = resolve_sampling(model.config.sampling, overrides or {}, warn=rank == 0)
        mine = list(range(rank, len(records), world))
        if distributed:
            logger.info("rank %d of %d scores %d of %d records on %s", rank, world, len(mine),
                        len(records), device)
        shown = (config.progress or sys.stderr.isatty()) and rank == 0
        results = score_records(model, [records[i] for i in mine], sampling=sampling,
                                batch_size=config.batch_size, num_workers=config.num_workers,
                                prefetch_factor=config.prefetch_factor, video_backend=config.video_backend,
                                decode_timeout=config.decode_timeout, video_root=root, progress=shown)
        output = Path(config.output_file)
        if not distributed:
            merged = results
        else:
            write_json(_shard_path(output, rank, world), [[i, r] for i, r in zip(mine, results)], indent=None)
            torch.distributed.barrier()
            if rank != 0:
                return 0
            merged = _merge_shards(output, world, len(records))
        write_json(output, merged)
        if distributed:
            for r in range(world):
                _shard_path(output, r, world).unlink()
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
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
