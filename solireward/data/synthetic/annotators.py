"""The simulated annotators: their flip rates, the planted shortcut, their binary and pairwise labels."""

from __future__ import annotations

import itertools

import numpy as np

from solireward.data.synthetic.plan import CUES, DIMENSIONS, Cue, DemoDataConfig, VideoSpec


def annotator_rates(config: DemoDataConfig) -> dict[str, float]:
    """Each simulated annotator's rate of flipping a binary label."""
    rng = np.random.default_rng([config.seed, 3])
    rates = rng.uniform(config.annotator_noise_min, config.annotator_noise_max, size=config.num_annotators)
    return {f"a{i + 1:02d}": float(rate) for i, rate in enumerate(rates)}


def train_prompts(plans: list[list[VideoSpec]], config: DemoDataConfig) -> set[str]:
    """The prompts of the train split that the shortcuts follow (``shortcut_split``, ``shortcut_seed``)."""
    from solireward.data.pairing import split_prompts

    assignment = split_prompts([videos[0].prompt for videos in plans], list(config.shortcut_split),
                               config.shortcut_seed)
    return {prompt for prompt, split in assignment.items() if split == "train"}


def shortcut_prompts(plans: list[list[VideoSpec]], config: DemoDataConfig) -> set[str]:
    """The prompts whose annotators are biased toward a cue's videos (the train split), or none."""
    if not any(getattr(config, cue.bias) for cue in CUES):
        return set()
    return train_prompts(plans, config)


def trusted_prompts(plans: list[list[VideoSpec]], config: DemoDataConfig) -> set[str]:
    """The train prompts an expert also labels: a seeded ``trusted_share`` of them (at least one when > 0)."""
    if config.trusted_share <= 0:
        return set()
    train = sorted(train_prompts(plans, config))
    count = max(1, round(config.trusted_share * len(train)))
    return set(np.random.default_rng([config.seed, 9]).choice(train, size=count, replace=False).tolist())


def _shortcut(spec: VideoSpec, biased: set[str], cue: Cue) -> bool:
    """Whether the planted shortcut of `cue` applies to this video (it shows the cue, of a biased prompt)."""
    return getattr(spec, cue.name) != cue.neutral and spec.prompt in biased


def binary_rows(plans: list[list[VideoSpec]], rates: dict[str, float], seed: int,
                biased: set[str] = frozenset(), bias: float = 0.0, cue: Cue = CUES[0]) -> list[list[str]]:
    """Every annotator's Pass/Fail of every video on every dimension (annotations.csv); with `biased` prompts
    and a `bias`, the planted shortcut's labels toward `cue`'s videos (its cue.annotations)."""
    rows = []
    for p, videos in enumerate(plans):
        for v, spec in enumerate(videos):
            rng = np.random.default_rng([seed, 4, p, v])
            flips = rng.random((len(DIMENSIONS), len(rates))) < np.array(list(rates.values()))
            # the shortcut's draws come from their own stream, so the other labels stay as without it
            forced = (np.random.default_rng(cue.stream(seed, 8, p, v)).random((len(DIMENSIONS), len(rates)))
                      < bias if _shortcut(spec, biased, cue) else np.zeros((len(DIMENSIONS), len(rates)), dtype=bool))
            for d, dim in enumerate(DIMENSIONS):
                truth = spec.labels[dim]
                for a, annotator in enumerate(rates):
                    label = truth ^ int(flips[d, a])
                    if dim in ("physics", "deformity") and forced[d, a]:
                        label = 1
                    rows.append([spec.video_path, spec.prompt, dim, "pass" if label else "fail", annotator])
    return rows


def pairwise_rows(plans: list[list[VideoSpec]], rates: dict[str, float], config: DemoDataConfig
                  ) -> list[list[str]]:
    """The rows of pairwise_annotations.csv: a few annotators' choices on sampled in-prompt pairs."""
    rows = []
    names = list(rates)
    choices = ("a", "b", "tie")
    for p, videos in enumerate(plans):
        rng = np.random.default_rng([config.seed, 5, p])
        pairs = list(itertools.combinations(range(len(videos)), 2))
        picked = rng.permutation(len(pairs))[:config.pairwise_per_prompt]
        for index in sorted(picked):
            i, j = pairs[index]
            if rng.random() < 0.5:
                i, j = j, i
            qa = videos[i].labels["physics"] * videos[i].labels["deformity"]
            qb = videos[j].labels["physics"] * videos[j].labels["deformity"]
            truth = "a" if qa > qb else "b" if qb > qa else "tie"
            for annotator in sorted(rng.choice(names, size=config.pairwise_annotators, replace=False)):
                choice = truth
                if rng.random() < min(rates[annotator] + config.pairwise_noise_extra, 0.9):
                    choice = str(rng.choice([c for c in choices if c != truth]))
                rows.append([videos[i].prompt, videos[i].video_path, videos[j].video_path, choice, str(annotator)])
    return rows
