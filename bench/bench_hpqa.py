"""HPQA overhead: forward + backward time of the HPQA head against the last-token head, side by side.

The backbone is a randomly initialised Qwen2 language model shaped like InternVL3-1B's (24 layers,
hidden 896, 14 query / 2 key-value heads, MLP 4864), built once and shared by both reward models,
which differ only in their head (``solireward.models.heads``; HPQA reads layers 6 12 18 24 with 8
query heads, as in the release). Each step is ``RewardModel.forward`` (the training code path, with
InternVL3's position ids from the attention mask) on one sequence of ``--frames`` x
``--tokens_per_frame`` video tokens plus ``--text_tokens`` text tokens, then ``backward`` of the
score into every backbone and head weight (full fine-tuning, no gradient checkpointing).

Video tokens enter as ``inputs_embeds`` (random vectors that require grad): the vision tower is the
same for both heads and would only add the same time to both, which lowers the overhead ratio, so
leaving it out makes the figure an upper bound. After one warm-up step per head the heads alternate
(A B A B ...); each pair gives a ratio, and the median ratio is reported. The ratio is taken on the
CPU time of this process (``time.process_time``), which a busy machine perturbs less than wall time
(wall times are printed too), yet on a shared machine single steps still vary by tens of percent, so
further figures are printed beside it: the ratio of the fastest steps; the FLOP overhead counted with
``torch.utils.flop_counter`` during the warm-up steps, which no load can disturb (but which counts a
float32 FLOP of the head like a bfloat16 FLOP of the backbone, though on CPU the former is slower);
and the time of each head alone (forward + backward on random hidden states, ``--head_repeats``
short interleaved runs), whose difference over the median last-token step estimates the overhead
from short, repeatable measurements. Goals (bench/goals.py): the counted FLOP overhead, i.e. the head's share of
the step, <= ``HPQA_MAX_FLOP_SHARE``, and the heads-alone estimate <= ``HPQA_MAX_TIME_SHARE``.

    OMP_NUM_THREADS=1 python bench/bench_hpqa.py [--repeats 3] [--dtype bfloat16] [--frames 8]
        [--tokens_per_frame 256] [--text_tokens 60] [--layers 24] [--threads 1]

At the default size one step takes about a minute on one core of a Xeon with AMX (bfloat16); the
whole run takes (2 + 2 x repeats) steps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from goals import HPQA_MAX_FLOP_SHARE, HPQA_MAX_TIME_SHARE

HPQA = "progressive_hierarchical_attention"
LAST = "last_token"

# InternVL3-1B's language model (Qwen2.5-0.5B-shaped); the vocabulary is irrelevant here (inputs_embeds).
INTERNVL3_1B_TEXT = dict(hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
                         max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)


def build_models(layers: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.nn.Module]:
    """Two reward models (HPQA and last-token heads) on one random InternVL3-1B-shaped language model."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from solireward.models import FAMILIES, RewardModel, RewardModelConfig
    from solireward.models.heads import build_head, default_layers

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=1024, num_hidden_layers=layers, tie_word_embeddings=True, **INTERNVL3_1B_TEXT)
    config._attn_implementation = "sdpa"
    backbone = Qwen2ForCausalLM(config).to(dtype)
    family = FAMILIES["InternVL3"]
    models = {}
    for name in (HPQA, LAST):
        head_layers = default_layers(layers) if name == HPQA else None
        rm_config = RewardModelConfig(model_type=family.name, reduce_sequence=name,
                                      hierarchical_query_attn_layers=head_layers)
        head = build_head(name, config.hidden_size, layers, head_layers, rm_config.num_query_heads)
        models[name] = RewardModel(backbone, None, family, rm_config, head).train()
    return models


def step(model: torch.nn.Module, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """One forward + backward; returns (CPU seconds of this process, wall seconds)."""
    model.zero_grad(set_to_none=True)
    embeds.grad = None
    cpu, wall = time.process_time(), time.perf_counter()
    score = model(input_ids=None, attention_mask=mask, inputs_embeds=embeds)
    score.sum().backward()
    return time.process_time() - cpu, time.perf_counter() - wall


def _register_cpu_attention_flops() -> None:
    """Teach torch's FLOP counter the CPU flash-attention kernels (it knows only the GPU ones).

    A causal attention computes about half of the score matrix, so it is counted at half.
    """
    from torch.utils.flop_counter import register_flop_formula, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)
    def forward_flops(query, key, value, dropout_p=0.0, is_causal=False, *args, out_val=None, **kwargs) -> int:
        return sdpa_flop_count(query.shape, key.shape, value.shape) // (2 if is_causal else 1)

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)
    def backward_flops(grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *args, out_val=None,
                       **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape) // (2 if is_causal else 1)


def count_flops(fn: Callable[[], tuple[float, float]]) -> tuple[int, tuple[float, float]]:
    """Floating-point operations of one call of `fn` (matrix products and attention), and its times."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        times = fn()
    return counter.get_total_flops(), times


def measure(run: dict[str, Callable[[], tuple[float, float]]], repeats: int
            ) -> tuple[dict[str, int], dict[str, list[tuple[float, float]]], list[float]]:
    """A warm-up step of each model, with its FLOPs counted; then HPQA and last-token alternately, `repeats`
    times. Returns the FLOPs, the (CPU, wall) seconds of every step and the per-pair CPU-time ratios."""
    flops = {}
    for name, fn in run.items():
        flops[name], (cpu, wall) = count_flops(fn)
        print(f"  warm-up {name:<36} cpu {cpu:7.2f} s  wall {wall:7.2f} s  {flops[name] / 1e12:.3f} TFLOP",
              flush=True)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in run}
    ratios = []
    for i in range(repeats):
        for name, fn in run.items():
            times[name].append(fn())
            print(f"  pair {i + 1} {name:<36} cpu {times[name][-1][0]:7.2f} s  wall {times[name][-1][1]:7.2f} s",
                  flush=True)
        ratios.append(times[HPQA][-1][0] / times[LAST][-1][0])
    return flops, times, ratios


def head_times(models: dict[str, torch.nn.Module], tokens: int, dtype: torch.dtype, repeats: int
               ) -> dict[str, float]:
    """Median CPU seconds of each head alone (forward + backward on random hidden states), interleaved.

    Short enough to repeat many times, so it is far less exposed to the machine's load than whole steps.
    """
    hidden = INTERNVL3_1B_TEXT["hidden_size"]
    generator = torch.Generator().manual_seed(1)
    states = [(torch.randn(1, tokens, hidden, generator=generator) * 0.5).to(dtype).requires_grad_(True)
              for _ in range(len(models[HPQA].head.layer_indices) + 1)]
    mask = torch.ones(1, tokens, dtype=torch.long)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats + 1):  # the first round warms up
        for name, model in models.items():
            head = model.head
            head.zero_grad(set_to_none=True)
            for state in states:
                state.grad = None
            layers = states[:len(head.layer_indices)]
            start = time.process_time()
            head(states[-1], mask, layers).sum().backward()
            times[name].append(time.process_time() - start)
    return {name: statistics.median(values[1:]) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="HPQA / last-token pairs measured (default: 3)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                        help="backbone dtype; heads always compute in float32 (default: bfloat16)")
    parser.add_argument("--frames", type=int, default=8, help="video frames (default: 8)")
    parser.add_argument("--tokens_per_frame", type=int, default=256,
                        help="vision tokens per frame (InternVL3: 256 per 448x448 tile; default: 256)")
    parser.add_argument("--text_tokens", type=int, default=60, help="prompt tokens around the video (default: 60)")
    parser.add_argument("--layers", type=int, default=24, help="decoder layers (default: 24, as InternVL3-1B)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--head_repeats", type=int, default=20,
                        help="interleaved forward + backward passes of each head alone (default: 20)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    models = build_models(args.layers, dtype)
    tokens = args.frames * args.tokens_per_frame + args.text_tokens
    hidden = INTERNVL3_1B_TEXT["hidden_size"]
    generator = torch.Generator().manual_seed(0)
    embeds = (torch.randn(1, tokens, hidden, generator=generator) * 0.02).to(dtype).requires_grad_(True)
    mask = torch.ones(1, tokens, dtype=torch.long)
    n_backbone = sum(p.numel() for p in models[LAST].backbone.model.parameters())
    n_heads = {name: sum(p.numel() for p in m.head.parameters()) for name, m in models.items()}
    print(f"backbone: Qwen2 {args.layers} layers, hidden {hidden}, {n_backbone / 1e6:.0f} M parameters, {args.dtype}; "
          f"heads float32: HPQA {n_heads[HPQA] / 1e6:.1f} M (layers {list(models[HPQA].head.layer_indices)}), "
          f"last-token {n_heads[LAST] / 1e6:.1f} M")
    print(f"sequence: batch 1 x {tokens} tokens ({args.frames} frames x {args.tokens_per_frame} + "
          f"{args.text_tokens} text); torch threads {torch.get_num_threads()}; forward + backward per step")
    _register_cpu_attention_flops()
    flops, times, ratios = measure({name: (lambda m=m: step(m, embeds, mask)) for name, m in models.items()},
                                   args.repeats)
    print()
    for name in (HPQA, LAST):
        print(f"{name:<36} median cpu {statistics.median(t[0] for t in times[name]):7.2f} s   "
              f"fastest cpu {min(t[0] for t in times[name]):7.2f} s   "
              f"median wall {statistics.median(t[1] for t in times[name]):7.2f} s")
    print(f"per-pair CPU-time ratios: {' '.join(f'{r:.4f}' for r in ratios)}")
    fastest = min(t[0] for t in times[HPQA]) / min(t[0] for t in times[LAST]) - 1.0
    print(f"fastest HPQA step / fastest last-token step - 1: {fastest * 100:+.2f} %")
    flop_share = flops[HPQA] / flops[LAST] - 1.0
    print(f"FLOP overhead (counted, noise-free): {flop_share * 100:+.3f} % "
          f"({flops[HPQA] / 1e12:.3f} vs {flops[LAST] / 1e12:.3f} TFLOP per step)")
    heads = head_times(models, tokens, dtype, args.head_repeats)
    estimate = (heads[HPQA] - heads[LAST]) / statistics.median(t[0] for t in times[LAST])
    print(f"heads alone (median of {args.head_repeats}, interleaved): HPQA {heads[HPQA]:.3f} s, last-token "
          f"{heads[LAST]:.3f} s CPU; head-time overhead estimate (difference / median last-token step): "
          f"{estimate * 100:+.2f} %")
    overhead = statistics.median(ratios) - 1.0
    print(f"HPQA overhead vs last-token (median ratio - 1): {overhead * 100:+.2f} %")
    for what, value, bound in (("FLOP share", flop_share, HPQA_MAX_FLOP_SHARE),
                               ("head-time share", estimate, HPQA_MAX_TIME_SHARE)):
        print(f"goal: {what} <= {bound * 100:g} %: {'met' if value <= bound else 'NOT met'}")

if __name__ == "__main__":
    main()
