"""GPU training and inference of the InternVL3-1B-shaped reward model: step time, videos/s, tokens/s, memory, MFU.

The model is InternVL3-1B's architecture with random weights built from its configuration (no
download): the InternViT-300M vision tower (24 layers, width 1024, 448x448 tiles of 14-pixel
patches, pixel shuffle to 256 tokens per tile), its projector, and the Qwen2 language model of
bench_hpqa.py (24 layers, hidden 896, vocabulary 151,674), with the HPQA head. Each video is
``--frames`` random frames at 448x448 (one tile, 256 visual tokens each) plus the chat prompt,
prepared by the processor `solireward tiny-model` builds for InternVL3 (InternVLVideoProcessor, the
release's class) through the scoring path's collator, once; the batch is that video repeated.

Training step = what `solireward train` does per micro-step with in-batch pairing: the trainer's
backend (``solireward.training.backend``: one process, or DeepSpeed with config/deepspeed/zero2.json
in a single-process group) runs the forward pass, ``losses.reward_loss`` over every pair of the
batch's videos, backward and the AdamW step with gradient clipping, full fine-tuning. It runs with
sdpa and, when the flash-attn package is installed, flash_attention_2; gradient checkpointing off
and on; then ZeRO-2 with the faster attention. Weights are bfloat16 and autocast is on (bf16), as in
config/internvl3_1b.yaml. After ``--warmup`` steps, ``--steps`` steps are timed one by one
(synchronised); the median is reported. Peak memory is the CUDA allocator's peak for the
configuration (weights, optimizer state, activations). Inference: eval mode, no gradients, bf16, the
scoring path's ``score_batches`` on ready inputs (model only, no decoding), at ``--infer_batches``.

MFU = FLOPs per step / median step time / the GPU's peak dense bf16 rate (``PEAK_BF16_TFLOPS``,
matched on the device name; an unknown device gets no MFU unless ``--peak_tflops`` is given). The
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward pass
of one video (sdpa, no checkpointing) and multiplied by the batch size (the videos are equal, so
FLOPs are linear in it): matrix products, convolutions and attention. Recomputation under gradient
checkpointing is not counted (model FLOPs, not hardware FLOPs), so checkpointing lowers MFU by its
extra forward pass; the optimizer's element-wise work is not counted either. Torch counts the full
score matrix of the language model's causal attention; the attention share of the count is printed.
Goal: the best training MFU >= ``GPU_MIN_MFU`` (bench/goals.py). FLOP counting and the peak rates: bench/flops.py.

Without a CUDA GPU it prints one line saying so and exits 0. ``--device cpu --tiny`` runs every part
that needs no CUDA (building, processor, FLOP count, all backends, timing, the report) on a tiny
model in seconds; tests/test_bench.py runs it.

    python bench/bench_gpu.py [--batch_size 8] [--steps 5] [--warmup 2] [--infer_batches 1 8 32]
    python bench/bench_gpu.py --device cpu --tiny      # smoke test, no GPU needed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.metadata
import importlib.util
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench_hpqa import INTERNVL3_1B_TEXT
from flops import count_flops, peak_tflops
from goals import GPU_MIN_MFU

REPO = Path(__file__).resolve().parent.parent
HPQA = "progressive_hierarchical_attention"


@dataclasses.dataclass(frozen=True)
class Shape:
    """Sizes of the benchmarked model and of its videos."""

    text: dict[str, Any]
    vision: dict[str, Any]
    image_size: int
    frames: int

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens per 448x448 tile after InternVL's pixel shuffle (14-pixel patches, ratio 0.5)."""
        return (self.image_size // 14) ** 2 // 4

    def with_layers(self, layers: int | None, vision_layers: int | None) -> "Shape":
        """The same widths with fewer (or more) decoder / vision layers."""
        text = {**self.text, "num_hidden_layers": layers or self.text["num_hidden_layers"]}
        vision = {**self.vision, "num_hidden_layers": vision_layers or self.vision["num_hidden_layers"]}
        return dataclasses.replace(self, text=text, vision=vision)


INTERNVL3_1B = Shape(
    text=dict(INTERNVL3_1B_TEXT, num_hidden_layers=24, vocab_size=151_674),
    vision=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                patch_size=14, layer_scale_init_value=0.1, norm_type="layer_norm", use_qk_norm=False),
    image_size=448, frames=8)
TINY = Shape(
    text=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=4096, rms_norm_eps=1e-6, num_hidden_layers=2, vocab_size=1000),
    vision=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14),
    image_size=56, frames=2)


# ----------------------------------------------------------------------------------------------
# Model and inputs


def build_processor(shape: Shape) -> Any:
    """The InternVL3 processor of `solireward tiny-model` at this image size (a small BPE tokenizer)."""
    from solireward.models.families import FAMILIES, TinySizes
    from solireward.models.tiny import train_tokenizer

    family = FAMILIES["InternVL3"]
    return family.build_tiny_processor(train_tokenizer(family, 400), family.chat_template,
                                       TinySizes(image_size=shape.image_size))


def build_model(shape: Shape, processor: Any, attn: str, dtype: torch.dtype, device: torch.device,
                seed: int = 0) -> Any:
    """A RewardModel (HPQA head) on a random InternVL backbone of `shape`, in train mode, on `device`."""
    import transformers

    from solireward.models import RewardModel, RewardModelConfig
    from solireward.models.families import FAMILIES
    from solireward.models.heads import build_head, default_layers
    from solireward.models.prompts import DEFAULT_SYSTEM_PROMPT, default_question

    tokenizer = processor.tokenizer
    text = dict(shape.text, model_type="qwen2", eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    vision = dict(shape.vision, image_size=shape.image_size)
    config = transformers.InternVLConfig(text_config=text, vision_config=vision, downsample_ratio=0.5,
                                         image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
                                         image_seq_length=shape.tokens_per_frame)
    torch.manual_seed(seed)
    with torch.device(device):
        backbone = transformers.InternVLForConditionalGeneration._from_config(config, attn_implementation=attn,
                                                                             dtype=dtype)
    layers = shape.text["num_hidden_layers"]
    rm_config = RewardModelConfig(model_type="InternVL3", reduce_sequence=HPQA,
                                  hierarchical_query_attn_layers=default_layers(layers),
                                  system_prompt=DEFAULT_SYSTEM_PROMPT, question=default_question("phy_deform"))
    head = build_head(HPQA, shape.text["hidden_size"], layers, rm_config.hierarchical_query_attn_layers,
                      rm_config.num_query_heads).to(device)
    return RewardModel(backbone, processor, FAMILIES["InternVL3"], rm_config, head).train()


def video_inputs(shape: Shape, processor: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model inputs of one random video of `shape.frames` frames, through the scoring path's collator."""
    from solireward.models.prompts import DEFAULT_SYSTEM_PROMPT, default_question
    from solireward.models.reward_model import RewardCollator

    frames = np.random.default_rng(seed).integers(0, 256, (shape.frames, shape.image_size, shape.image_size, 3),
                                                  dtype=np.uint8)
    collator = RewardCollator(processor, DEFAULT_SYSTEM_PROMPT, default_question("phy_deform"))
    return collator.encode(frames, "a red ball bounces on the floor and rolls under a table")


def repeat_batch(one: dict[str, torch.Tensor], batch: int, pin: bool) -> dict[str, torch.Tensor]:
    """`batch` copies of one video's inputs (pinned, as the trainer's DataLoader pins them on CUDA)."""
    out = {key: torch.cat([value] * batch) for key, value in one.items()}
    return {key: value.pin_memory() for key, value in out.items()} if pin else out


def parameter_counts(model: Any) -> tuple[int, int, int]:
    """(all, vision tower + projector, language model) parameters; tied embeddings counted once."""
    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    inner = model.backbone.model
    return count(model), count(inner.vision_tower) + count(inner.multi_modal_projector), count(inner.language_model)


# ----------------------------------------------------------------------------------------------
# Timing


class Clock:
    """Wall-clock timing and peak memory on one device (CUDA: synchronised, allocator peak)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        """Wait for the device's queued work."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        """Free cached memory and restart the peak."""
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        """Peak allocated memory since `reset`, GiB (None off CUDA)."""
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def times(self, fn: Callable[[], Any], warmup: int, steps: int) -> list[float]:
        """Seconds of each of `steps` calls of `fn` after `warmup` calls, each synchronised."""
        for _ in range(warmup):
            fn()
        self.sync()
        out = []
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            self.sync()
            out.append(time.perf_counter() - start)
        return out


@dataclasses.dataclass
class Result:
    """One measured configuration (or why it could not be measured)."""

    label: list[str]
    batch: int
    seconds: float | None = None
    peak_gib: float | None = None
    problem: str | None = None

    def row(self, tokens_per_video: int, flops_per_video: int | None, peak: float | None) -> str:
        """A Markdown table row: the label cells, then step s, videos/s, tokens/s, peak GiB, MFU."""
        if self.seconds is None:
            return "| " + " | ".join(self.label + [f"{self.batch}", f"not measured: {self.problem}", "", "", "", ""]) \
                + " |"
        videos = self.batch / self.seconds
        memory = f"{self.peak_gib:.1f}" if self.peak_gib is not None else "-"
        cells = [f"{self.batch}", f"{self.seconds:.3f}", f"{videos:.1f}", f"{videos * tokens_per_video:,.0f}", memory,
                 f"{mfu(self, flops_per_video, peak) * 100:.1f} %" if peak and flops_per_video else "-"]
        return "| " + " | ".join(self.label + cells) + " |"


def mfu(result: Result, flops_per_video: int | None, peak: float | None) -> float | None:
    """Counted FLOPs per second over the peak rate (None when either is unknown)."""
    if result.seconds is None or not peak or not flops_per_video:
        return None
    return flops_per_video * result.batch / result.seconds / (peak * 1e12)


def failure(exc: BaseException) -> str:
    """A table cell for a configuration that failed; the traceback goes to stderr (out of memory: one line)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "out of memory"
    traceback.print_exception(exc, file=sys.stderr)
    first = (str(exc).splitlines() or [""])[0][:120].replace("|", "/")
    return f"failed ({type(exc).__name__}: {first})"


def train_config(label: list[str], make: Callable[[], tuple[Any, Callable[[], None]]], clock: Clock, batch: int,
                 warmup: int, steps: int) -> Result:
    """Build one training configuration with `make` (-> (backend, step)), time its steps, free it."""
    clock.reset()
    backend = step = None
    try:
        backend, step = make()
        seconds = statistics.median(clock.times(step, warmup, steps))
        return Result(label, batch, seconds, clock.peak_gib())
    except Exception as exc:  # noqa: BLE001 - one configuration's failure must not lose the others' rows
        return Result(label, batch, problem=failure(exc))
    finally:
        del backend, step
        clock.reset()


def make_training(shape: Shape, processor: Any, inputs: dict[str, torch.Tensor], *, attn: str, checkpointing: bool,
                  zero2: bool, dtype: torch.dtype, bf16: bool, env: Any) -> tuple[Any, Callable[[], None]]:
    """The trainer's backend around a fresh model, and one training step (forward, loss, backward, update)."""
    from solireward.losses import LossConfig, in_batch_pairs, reward_loss
    from solireward.training.backend import deepspeed_config, make_backend
    from solireward.training.config import TrainConfig
    from solireward.training.optimization import parameter_groups

    model = build_model(shape, processor, attn, dtype, env.device)
    if checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ds_config = None
    if zero2:
        cfg = TrainConfig(model_name_or_path="(bench)", train_data="(bench)", output_dir="(bench)",
                          deepspeed=str(REPO / "config" / "deepspeed" / "zero2.json"))
        ds_config = deepspeed_config(cfg, env.world_size, bf16)
    backend = make_backend(model, optimizer, scheduler, env, bf16=bf16, max_grad_norm=1.0, accumulation=1,
                           ds_config=ds_config)
    batch = len(inputs["input_ids"])
    qualities = torch.tensor([1.0, 0.0] * (batch // 2) + [1.0] * (batch % 2), device=env.device)
    win, lose, tie = in_batch_pairs(qualities)
    loss_config = LossConfig()

    def step() -> None:
        scores = backend.forward(inputs)
        loss, _ = reward_loss(scores, win, lose, tie, qualities, loss_config)
        backend.backward(loss)
        backend.step()

    return backend, step


def infer_config(model: Any, one: dict[str, torch.Tensor], batch: int, clock: Clock, warmup: int, steps: int,
                 attn: str, autocast: Callable[[], Any]) -> Result:
    """Videos/s of the scoring path's `score_batches` on ready batches of `batch` videos."""
    from solireward.scoring import Batch, score_batches

    clock.reset()
    try:
        ready = Batch(index=list(range(batch)), inputs=repeat_batch(one, batch, clock.cuda), failed=[])
        dtype = next(model.backbone.parameters()).dtype
        seconds = statistics.median(clock.times(
            lambda: score_batches(model, [ready], clock.device, on_error="raise", autocast=autocast,
                                  input_dtype=None if dtype == torch.float32 else dtype), warmup, steps))
        return Result([attn], batch, seconds, clock.peak_gib())
    except Exception as exc:  # noqa: BLE001 - as in train_config
        return Result([attn], batch, problem=failure(exc))
    finally:
        clock.reset()


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: the smoke test)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and video instead of InternVL3-1B's shape")
    parser.add_argument("--batch_size", type=int, default=None, help="videos per training step (default: 8; tiny 4)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--infer_batches", type=int, nargs="+", default=[1, 8, 32],
                        help="inference batch sizes (default: 1 8 32)")
    parser.add_argument("--backends", nargs="+", choices=("single", "zero2"), default=["single", "zero2"],
                        help="training backends (default: single zero2)")
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="peak dense bf16 TFLOP/s of this device (default: from the table by device name)")
    args = parser.parse_args(argv)
    if min(args.steps, *args.infer_batches) < 1 or args.warmup < 0:
        parser.error("--steps and --infer_batches must be at least 1, --warmup at least 0")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU available: bench_gpu.py measured nothing (run it on a machine with one; "
              "`--device cpu --tiny` is its smoke test)")
        return 0
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
    shape = TINY if args.tiny else INTERNVL3_1B
    batch = args.batch_size or (4 if args.tiny else 8)
    if batch < 2:
        parser.error("--batch_size must be at least 2 (in-batch pairs need two videos)")
    cuda = device.type == "cuda"
    # bf16 weights and autocast as config/internvl3_1b.yaml; the trainer allows bf16 only on CUDA
    dtype, bf16 = (torch.bfloat16, True) if cuda else (torch.float32, False)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    attentions = ["sdpa"] + (["flash_attention_2"] if flash else [])
    best_attn = attentions[-1]

    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = args.peak_tflops or (peak_tflops(name) if cuda else None)
    source = "given" if args.peak_tflops else "from the table"
    flash_note = (f"flash-attn {importlib.metadata.version('flash-attn')}" if flash
                  else "flash-attn not installed (sdpa only)" if cuda else "flash-attn: CUDA only")
    print(f"device: {name}; peak dense bf16: " + (f"{peak:g} TFLOP/s ({source})" if peak else
          "unknown for this device (not in the table; give --peak_tflops): no MFU") +
          f"; torch {torch.__version__}; {flash_note}")

    processor = build_processor(shape)
    one = video_inputs(shape, processor)
    tokens = int(one["input_ids"].shape[1])
    visual = shape.frames * shape.tokens_per_frame
    model = build_model(shape, processor, "sdpa", dtype, device)
    total, vision, language = parameter_counts(model)
    print(f"model: {'tiny InternVL' if args.tiny else 'InternVL3-1B-shaped'} (random weights), {total / 1e6:,.1f} M "
          f"parameters (vision tower + projector {vision / 1e6:,.1f} M, language model {language / 1e6:,.1f} M), "
          f"{str(dtype).removeprefix('torch.')} weights, bf16 autocast {'on' if bf16 else 'off'}, HPQA head")
    print(f"sequence: {tokens} tokens per video ({shape.frames} frames x {shape.tokens_per_frame} visual + "
          f"{tokens - visual} text), {shape.image_size}x{shape.image_size} frames; training batch {batch} videos")
    flops = count_flops(model, one, device, autocast)
    print(f"FLOPs per video: {flops.train / 1e9:,.2f} GFLOP per training step (forward + backward), "
          f"{flops.forward / 1e9:,.2f} GFLOP forward; counted with torch.utils.flop_counter.FlopCounterMode on one "
          f"step (sdpa, no checkpointing: recomputation not counted); attention {flops.attention_share * 100:.1f} % "
          "of the training count")
    del model

    clock = Clock(device)
    from solireward import distributed as D

    env = D.DistEnv(0, 1, 0, device, None)
    inputs = repeat_batch(one, batch, cuda)
    plan = [(attn, gc_on, False) for attn in attentions for gc_on in (False, True)] if "single" in args.backends \
        else []
    if "zero2" in args.backends and importlib.util.find_spec("deepspeed") is None:
        print("ZeRO-2: not measured, the deepspeed package is not installed")
    elif "zero2" in args.backends:
        plan += [(best_attn, gc_on, True) for gc_on in (False, True)]
    results = []
    zero_env = None
    try:
        for attn, gc_on, zero2 in plan:
            if zero2 and zero_env is None:
                zero_env = D.setup(use_deepspeed=True, device=device)
            label = [attn, "on" if gc_on else "off", "ZeRO-2 (DeepSpeed, 1 process)" if zero2 else "1 process"]
            results.append(train_config(label, lambda: make_training(
                shape, processor, inputs, attn=attn, checkpointing=gc_on, zero2=zero2, dtype=dtype, bf16=bf16,
                env=zero_env if zero2 else env), clock, batch, args.warmup, args.steps))
            print(f"  measured: {' / '.join(label)}", file=sys.stderr, flush=True)
    finally:
        if zero_env is not None:
            D.cleanup(zero_env)

    print()
    print("| attention | checkpointing | backend | batch | step s | videos/s | LM tokens/s | peak GiB | MFU |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for result in results:
        print(result.row(tokens, flops.train, peak))

    try:
        model = build_model(shape, processor, best_attn, dtype, device).eval()
    except Exception as exc:  # noqa: BLE001 - as in train_config
        problem = failure(exc)
        infer = [Result([best_attn], b, problem=problem) for b in args.infer_batches]
    else:
        infer = [infer_config(model, one, b, clock, args.warmup, args.steps, best_attn, autocast)
                 for b in args.infer_batches]
        del model
    print()
    print("| inference attention | batch | batch s | videos/s | LM tokens/s | peak GiB | MFU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for result in infer:
        print(result.row(tokens, flops.forward, peak))
    print()
    measured = [r for r in results if r.seconds is not None]
    if measured:
        fastest = min(measured, key=lambda r: r.seconds)
        print(f"fastest training step: {fastest.seconds:.3f} s for {batch} videos = {batch / fastest.seconds:.1f} "
              f"videos/s ({', '.join(fastest.label)})")
    if measured and peak:
        best = max(measured, key=lambda r: mfu(r, flops.train, peak))
        value = mfu(best, flops.train, peak)
        print(f"best training MFU: {value * 100:.1f} % ({', '.join(best.label)}) (goal >= {GPU_MIN_MFU * 100:g} %): "
              f"{'met' if value >= GPU_MIN_MFU else 'NOT met'}")
    else:
        print("best training MFU: not computed (" + ("no configuration was measured)" if not measured
                                                     else f"no peak rate known for {name})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
