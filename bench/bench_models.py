"""Parameter count and forward+backward time of one batch for the tiny model of every family.

Usage: OMP_NUM_THREADS=1 python bench/bench_models.py [--batch_size 8] [--frames 16] [--repeats 5]
Videos are random 56x56 clips; the question is the text-alignment one. Prints one row per
family x head, measured side by side in this run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from solireward.models import FAMILIES, RewardModel, RewardModelConfig
from solireward.models.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=8, help="videos per batch (default: 8)")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (default: 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions; the median is shown (default: 5)")
    parser.add_argument("--heads", nargs="+", default=["progressive_hierarchical_attention", "last_token"],
                        help="heads to time (default: progressive_hierarchical_attention last_token)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.frames, 56, 56, 3), dtype=np.uint8) for _ in range(args.batch_size)]
    prompts = [f"a small object number {i} moves across the scene" for i in range(args.batch_size)]
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size} videos x {args.frames} frames 56x56")
    print(f"{'family':<12} {'head':<36} {'backbone':>9} {'head':>7} {'tokens':>6} {'fwd+bwd s':>9} {'collate s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            folder = build_tiny_model(family, f"{tmp}/{family}", seed=0)
            for head in args.heads:
                torch.manual_seed(0)
                model = RewardModel.from_backbone(folder, RewardModelConfig(reduce_sequence=head,
                                                                            reward_task="text_alignment")).train()
                t0 = time.perf_counter()
                batch = model.collator()(frames, prompts)
                collate_s = time.perf_counter() - t0
                times = []
                for _ in range(args.repeats + 1):
                    model.zero_grad(set_to_none=True)
                    t0 = time.perf_counter()
                    model(**batch).sum().backward()
                    times.append(time.perf_counter() - t0)
                n_backbone = sum(p.numel() for p in model.backbone.parameters())
                n_head = sum(p.numel() for p in model.head.parameters())
                print(f"{family:<12} {head:<36} {n_backbone:>9,} {n_head:>7,} {batch['input_ids'].shape[1]:>6} "
                      f"{statistics.median(times[1:]):>9.3f} {collate_s:>9.3f}")


if __name__ == "__main__":
    main()
