"""Where a consistency-twin training's extra time goes: the twins' preparation and their forward and backward pass.

On the demo recipe (config/demo_train.yaml: a tiny Qwen2-VL, 16 frames at 56x56, 16 videos a step) and its data
(bench_train.prepare_demo), in this process, with the study's `robust` flags (config/config.yaml: exposure,
frame-count and size jitter, consistency twins), each batch built as `solireward train` builds it
(``training.data.VideoBatches`` with the trainer's ``AugmentingEncoder``):

1. preparing a batch, plain (every video's inputs from the encoder's cache, as in every pass after the first)
   against with twins (each step's fresh draw of every video sampled, resized, exposed and processed), after
   one pass over the batches has filled the caches;
2. forward + backward of a batch's originals against of its twins, interleaved, with the padded length of each.

Prints ms per batch and their ratios; no goal. docs/MEASURED.md ("The demo twice at one commit") quotes a run.

    OMP_NUM_THREADS=1 python bench/bench_twins.py [--workdir DIR] [--batches 20] [--videos 16]
    python bench/bench_twins.py --tiny            # seconds: 30 prompts, 2 batches of 4 (the test's smoke run)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench_train import REPO, prepare, prepare_demo, tiny_model


def _recipe() -> tuple[dict, dict]:
    """The demo recipe's options and the `robust` mitigation's flags, from their config files."""
    recipe = yaml.safe_load((REPO / "config" / "demo_train.yaml").read_text(encoding="utf-8"))
    robust = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))["mitigations"]["robust"]
    return recipe, robust


def _ms(seconds: float, count: int) -> float:
    return 1000 * seconds / max(count, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="folder for data and model (default: temp)")
    parser.add_argument("--batches", type=int, default=20, help="batches measured (default: 20)")
    parser.add_argument("--videos", type=int, default=None, help="videos a batch (default: the recipe's 16)")
    parser.add_argument("--tiny", action="store_true", help="30 prompts, 2 batches of 4 videos: a smoke run")
    args = parser.parse_args(argv)
    import torch

    from solireward.data.video import FrameSampling
    from solireward.models.reward_model import RewardModel, RewardModelConfig
    from solireward.scoring import VideoEncoder
    from solireward.training.augment import Augmentation, AugmentingEncoder
    from solireward.training.data import VideoBatches, read_pair_file

    torch.manual_seed(0)
    recipe, robust = _recipe()
    batches_n, videos_n = (2, 4) if args.tiny else (args.batches, args.videos or recipe["per_device_train_batch_size"])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        pairs = prepare(workdir) if args.tiny else prepare_demo(workdir)
        videos = read_pair_file(str(pairs / "train.json"))   # as the trainer reads it
        paths, prompts = videos.video_paths, videos.prompts
        sampling = FrameSampling(mode=recipe["mode"], num_frames=recipe["num_frames"], height=recipe["height"],
                                 width=recipe["width"], exposure=robust["exposure"])
        model = RewardModel.from_backbone(tiny_model(workdir), RewardModelConfig(sampling=sampling.to_dict())).train()
        fields = {f.name for f in dataclasses.fields(Augmentation)}
        draws = Augmentation(**{k: tuple(v) if isinstance(v, list) else v for k, v in robust.items() if k in fields})
        order = np.random.default_rng(0).permutation(len(paths))[:batches_n * videos_n].reshape(batches_n, videos_n)
        zeros = np.zeros(len(paths))

        def batches(twins: bool) -> VideoBatches:
            encoder = VideoEncoder(model.collator(), sampling, cache=True)
            augment = AugmentingEncoder(encoder, draws, recipe["seed"], cache=True) if twins else None
            return VideoBatches(list(order), paths, prompts, zeros, zeros.astype(np.int64), encoder,
                                augment=augment, twins=twins)

        prepared, timed = {}, {}
        for name, twins in (("plain", False), ("twins", True)):
            data = batches(twins)
            for i in range(len(data)):   # the first pass: decoding and the originals' encoding, then cached
                data[i]
            data.first_step = len(data)   # the steps after it: new draws
            start = time.perf_counter()
            prepared[name] = [data[i] for i in range(len(data))]
            timed[name] = time.perf_counter() - start

        def step(inputs: dict) -> float:
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            model(**inputs).float().sum().backward()
            return time.perf_counter() - start

        passes = {"originals": 0.0, "twins": 0.0}
        for batch in prepared["twins"]:
            for name, key in (("originals", "inputs"), ("twins", "twins")):
                passes[name] += step(batch[key])

    n = len(prepared["twins"])
    lengths = {key: np.mean([b[key]["input_ids"].shape[1] for b in prepared["twins"]]) for key in ("inputs", "twins")}
    plain_ms, twins_ms = _ms(timed["plain"], n), _ms(timed["twins"], n)
    originals_ms, twin_pass_ms = _ms(passes["originals"], n), _ms(passes["twins"], n)
    print(f"twin cost: demo recipe + robust, {n} batches of {videos_n} videos, {torch.get_num_threads()} thread(s)")
    print(f"batch preparation: plain (cached) {plain_ms:.1f} ms, with twins {twins_ms:.1f} ms "
          f"({(twins_ms - plain_ms) / videos_n:.2f} ms a twin)")
    print(f"forward + backward: originals {originals_ms:.1f} ms, twins {twin_pass_ms:.1f} ms "
          f"({twin_pass_ms / originals_ms:.2f}x); padded length: originals {lengths['inputs']:.0f}, "
          f"twins {lengths['twins']:.0f} tokens (mean over batches)")
    extra = twins_ms - plain_ms + twin_pass_ms
    print(f"a step's extra work with twins: {extra:.1f} ms, of which the twins' pass {twin_pass_ms / extra:.0%} "
          f"and their preparation {(twins_ms - plain_ms) / extra:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
