"""The demo set's vocabulary, its options and its plan: what every video shows and its ground truth."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from solireward.config import arg
from solireward.data.frame_edits import GRAIN_SIGMA, LETTERBOX_SCALE, VIGNETTE, WARM_CAST
from solireward.errors import ConfigError, InputError


COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35), "green": (40, 200, 60), "blue": (45, 90, 235), "yellow": (240, 220, 40),
    "purple": (165, 55, 205), "orange": (250, 135, 25), "white": (240, 240, 240),
}
_SIMILAR_COLOURS = {frozenset(p) for p in (("red", "orange"), ("orange", "yellow"), ("blue", "purple"))}
SHAPES = ("ball", "square", "triangle", "cross")
MOTIONS: dict[str, str] = {
    "fall": "falls to the ground",
    "bounce": "bounces on the ground",
    "toss": "is thrown up and falls back down",
    "slide_left": "slides to the left",
    "slide_right": "slides to the right",
}
# a wrong motion must differ at a glance (a fall and a bounce start alike, so they never swap)
_WRONG_MOTIONS = {
    "fall": ("toss", "slide_left", "slide_right"),
    "bounce": ("toss", "slide_left", "slide_right"),
    "toss": ("fall", "slide_left", "slide_right"),
    "slide_left": ("slide_right", "fall", "toss"),
    "slide_right": ("slide_left", "fall", "toss"),
}
# a morph must change the outline clearly (a ball and a square differ only in their corners)
_MORPH_TARGETS = {"ball": ("triangle", "cross"), "square": ("triangle", "cross"),
                  "triangle": ("ball", "square", "cross"), "cross": ("ball", "square", "triangle")}
PHYSICS_DEFECTS = ("teleport", "hover", "anti_gravity")
DEFORMITY_DEFECTS = ("morph", "tear", "melt")
TEXT_DEFECTS = ("wrong_colour", "wrong_shape", "wrong_motion")
DIMENSIONS = ("physics", "deformity", "text_alignment")
# half height of each shape relative to its radius (where it rests on the ground)
SHAPE_EXTENT = {"ball": 1.0, "square": 0.85, "triangle": 1.0, "cross": 1.0}



@dataclasses.dataclass(frozen=True)
class Cue:
    """A plantable shortcut: a nuisance rendered on a share of each prompt's videos (ground truth unchanged),
    and train-split annotators biased to mark those videos Pass (a label file and label source of its own)."""

    name: str  # the VideoSpec field it sets, and its column in ground_truth.csv
    label_source: str  # the label source of its biased labels
    share: str  # DemoDataConfig field: share of each prompt's videos that show it
    value: str  # DemoDataConfig field: the nuisance's value on those videos
    bias: str  # DemoDataConfig field: probability that a biased annotator passes such a video
    rendered: str  # how those videos are rendered ({value}: the value), for the README
    kind: str  # what such a video is called ("a bright video")
    probe: str | None  # the stress probe's perturbation that shows it on any video (None: none does)
    tag: str  # the letter before its value in a grid video's file name (grid_specs)
    also_shown_by: tuple[str, ...] = ()  # other perturbations that show it (a milder amount; no goal of their own)

    @property
    def shown_by(self) -> tuple[str, ...]:
        """Every perturbation of the stress probe that shows this cue on any video."""
        return (self.probe, *self.also_shown_by) if self.probe else self.also_shown_by

    @property
    def neutral(self) -> float:
        """The nuisance's value on a video that does not show the cue (VideoSpec's default)."""
        return VideoSpec.__dataclass_fields__[self.name].default

    @property
    def annotations(self) -> str:
        """The file name of its biased labels."""
        return f"annotations_{self.label_source}.csv"

    def stream(self, seed: int, purpose: int, *ids: int) -> list[int]:
        """The random-state entropy of one of its draws; brightness (the first cue) keeps the streams it had."""
        return [seed, purpose, *ids] + ([CUES.index(self)] if self is not CUES[0] else [])


# the plantable cues; `biased` (brightness) was the only one and keeps its label source and files
CUES = (
    Cue("brightness", "biased", "bright_share", "bright_gain", "shortcut_bias", "brightness gain {value:g}",
        "bright", "brightness", "b"),
    Cue("scale", "biased_size", "size_share", "size_scale", "size_bias", "the object {value:g} times as large",
        "large-object", "zoom_x1.3", "s", ("zoom_x1.15",)),
    Cue("background_shift", "biased_background", "background_share", "background_shift", "background_bias",
        "the background's grey level shifted by {value:g}", "shifted-background", None, "g"),
    Cue("overlay", "biased_overlay", "overlay_share", "overlay_size",
        "overlay_bias", "a static caption box {value:g} of the frame wide in the top-left corner", "captioned",
        "overlay", "o"),
    Cue("tint", "biased_tint", "tint_share", "tint_strength", "tint_bias",
        "a warm colour cast: red x(1 + {value:g}), blue x(1 - {value:g})", "warm-tinted", "tint", "t"),
    Cue("grain", "biased_grain", "grain_share", "grain_sigma", "grain_bias",
        "sensor grain: Gaussian noise of {value:g} grey levels on every pixel", "grainy", "grain", "n"),
    Cue("letterbox", "biased_letterbox", "letterbox_share", "letterbox_scale", "letterbox_bias",
        "the picture shrunk to {value:g} of each side on a black frame", "letterboxed", "letterbox", "l"),
    Cue("saturation", "biased_saturation", "saturation_share", "saturation_factor", "saturation_bias",
        "colours {value:g} times as saturated (each pixel's distance from its grey)", "vivid", "saturation", "v"),
    Cue("vignette", "biased_vignette", "vignette_share", "vignette_strength", "vignette_bias",
        "a lens vignette: each pixel times 1 - {value:g} (r / R)^2, darkest in the corners", "vignetted", "vignette",
        "c"),
)
TRUSTED_ANNOTATIONS = "annotations_trusted.csv"  # an expert's labels of a few train prompts (label source trusted)
# the binary labels of the brightness shortcut's annotators (written when shortcut_bias > 0)
BIASED_ANNOTATIONS = CUES[0].annotations


def cue_goals(demo: Mapping[str, Any] | None, held_out: Sequence[str], limits: Mapping[str, float] | None
              ) -> tuple[list[str], list[str]]:
    """Each cue planted in the demo data (`demo`: data.demo's flags, its bias above 0) with its own goals, in the
    report's goal syntax: ``probe:<its probe perturbation>=<limits["probe"]>`` (where one shows it) and
    ``share:<its grid axis>=<limits["share"]>``; as (the goals of the cues that may choose, those of the label
    sources `held_out` of the choice). No `limits` or no demo data: none."""
    choosing: list[str] = []
    kept: list[str] = []
    for cue in CUES if limits and demo else ():
        if not demo.get(cue.bias, 0) > 0:
            continue
        goals = kept if cue.label_source in held_out else choosing
        if cue.probe and "probe" in limits:
            goals.append(f"probe:{cue.probe}={limits['probe']:g}")
        if "share" in limits:
            goals.append(f"share:{cue.name}={limits['share']:g}")
    return choosing, kept


def _bias_help(cue: Cue) -> str:
    """The --help of a cue's bias flag (brightness's, `shortcut_bias`, is spelt out)."""
    return (f"planted shortcut like shortcut_bias, for {cue.kind} videos (label source {cue.label_source}, "
            f"{cue.annotations})")


@dataclasses.dataclass
class DemoDataConfig:
    """Options of `solireward demo-data`."""

    output_dir: str = arg("folder to write videos/, annotations.csv, pairwise_annotations.csv, "
                          "ground_truth.csv and README.md into")
    seed: int = arg("random seed; the same seed and flags give identical files", 0)
    num_prompts: int = arg(f"number of distinct prompts (at most {len(COLOURS) * len(SHAPES) * len(MOTIONS)})", 50)
    videos_per_prompt: int = arg("videos generated for each prompt", 8)
    num_frames: int = arg("frames per video", 16)
    size: int = arg("frame height and width in pixels (even, at least 32)", 64)
    fps: float = arg("frame rate stored in the mp4 files", 8.0)
    num_annotators: int = arg("simulated annotators labelling every video (a01, a02, ...)", 5)
    pairwise_per_prompt: int = arg("in-prompt video pairs given pairwise labels per prompt", 6)
    pairwise_annotators: int = arg("annotators labelling each pair (drawn from the pool)", 3)
    physics_defect_rate: float = arg("share of videos with a physics defect", 0.37)
    deformity_defect_rate: float = arg("share of videos with a deformity defect", 0.37)
    text_defect_rate: float = arg("share of videos that do not match their prompt", 0.5)
    annotator_noise_min: float = arg("lowest per-annotator rate of flipping a binary label", 0.08)
    annotator_noise_max: float = arg("highest per-annotator rate of flipping a binary label", 0.22)
    pairwise_noise_extra: float = arg("added to each annotator's flip rate for pairwise choices "
                                      "(pairwise labels are noisier, as in the paper)", 0.13)
    bright_share: float = arg("share of each prompt's videos rendered brighter (a nuisance: the ground "
                              "truth is unchanged); 0 renders none", 0.0)
    bright_gain: float = arg("brightness gain of those videos (pixel values times the gain, clipped)", 1.4)
    shortcut_bias: float = arg("planted shortcut: probability that an annotator marks a bright video of a "
                               "train-split prompt Pass on physics and deformity whatever it shows; > 0 writes those labels to "
                               f"{BIASED_ANNOTATIONS} (annotations.csv stays clean)", 0.0)
    shortcut_split: list[float] = arg("train val test prompt fractions of the `solireward pairs` split the "
                                      "shortcut follows (give the study's pairs split)",
                                      default_factory=lambda: [0.8, 0.1, 0.1])
    shortcut_seed: int = arg("seed of that `solireward pairs` split", 0)
    size_share: float = arg("share of each prompt's videos whose object is drawn larger (a nuisance, drawn "
                            "independently of the others); 0 renders none", 0.0)
    size_scale: float = arg("object size of those videos relative to the usual one", 1.3)
    size_bias: float = arg(_bias_help(CUES[1]), 0.0)
    background_share: float = arg("share of each prompt's videos with a shifted background shade (a nuisance); "
                                  "0 renders none", 0.0)
    background_shift: int = arg("grey levels added to the background of those videos", 60)
    background_bias: float = arg(_bias_help(CUES[2]), 0.0)
    overlay_share: float = arg("share of each prompt's videos with a static caption box (a nuisance); "
                               "0 renders none", 0.0)
    overlay_size: float = arg("width of that box as a share of the frame width", 0.3)
    overlay_bias: float = arg(_bias_help(CUES[3]), 0.0)
    tint_share: float = arg("share of each prompt's videos with a warm colour cast (a nuisance); 0 renders none", 0.0)
    tint_strength: float = arg("strength of that cast: red times 1 + it, blue times 1 - it (the probe's tint "
                               "perturbation by default)", WARM_CAST)
    tint_bias: float = arg(_bias_help(CUES[4]), 0.0)
    grain_share: float = arg("share of each prompt's videos with sensor grain (a nuisance); 0 renders none", 0.0)
    grain_sigma: float = arg("grey levels of that grain (the probe's grain perturbation by default)", GRAIN_SIGMA)
    grain_bias: float = arg(_bias_help(CUES[5]), 0.0)
    letterbox_share: float = arg("share of each prompt's videos letterboxed (a nuisance); 0 renders none", 0.0)
    letterbox_scale: float = arg("the picture's share of each side inside that black frame (the probe's letterbox "
                                 "perturbation by default)", LETTERBOX_SCALE)
    letterbox_bias: float = arg(_bias_help(CUES[6]), 0.0)
    saturation_share: float = arg("share of each prompt's videos with vivid colours (a nuisance); 0 renders none",
                                  0.0)
    # stronger than the probe's x1.6: at x1.6 the label audit told the cue apart at family-wise p 0.02 only, in 40
    # prompts of 8 videos at bias 0.9 (a dark background's chroma varies from video to video nearly as much)
    saturation_factor: float = arg("how many times as saturated those videos' colours are", 2.0)
    saturation_bias: float = arg(_bias_help(CUES[7]), 0.0)
    vignette_share: float = arg("share of each prompt's videos with a lens vignette (a nuisance); 0 renders none", 0.0)
    vignette_strength: float = arg("how much darker that vignette makes the corners, as a share (the probe's "
                                   "vignette perturbation by default)", VIGNETTE)
    vignette_bias: float = arg(_bias_help(CUES[8]), 0.0)
    trusted_share: float = arg("share of the train-split prompts (of the shortcut split) whose labels an expert "
                               f"also gives: the unbiased annotators' labels of their videos, in {TRUSTED_ANNOTATIONS} "
                               "(label source `trusted`, for fine-tuning a model on them); 0 writes none", 0.0)
    progress: bool = arg("show a progress bar even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        max_prompts = len(COLOURS) * len(SHAPES) * len(MOTIONS)
        checks = [
            ("num_prompts", 1 <= self.num_prompts <= max_prompts, f"between 1 and {max_prompts}"),
            ("videos_per_prompt", self.videos_per_prompt >= 1, "at least 1"),
            ("num_frames", self.num_frames >= 8, "at least 8"),
            ("size", self.size >= 32 and self.size % 2 == 0, "even and at least 32"),
            ("fps", self.fps > 0, "positive"),
            ("num_annotators", 1 <= self.num_annotators <= 99, "between 1 and 99"),
            ("pairwise_per_prompt", self.pairwise_per_prompt >= 0, "0 or more"),
            ("pairwise_annotators", 1 <= self.pairwise_annotators <= self.num_annotators,
             "between 1 and num_annotators"),
            ("annotator_noise_max", 0 <= self.annotator_noise_min <= self.annotator_noise_max <= 0.5,
             "0 <= annotator_noise_min <= annotator_noise_max <= 0.5"),
            ("pairwise_noise_extra", 0 <= self.pairwise_noise_extra <= 0.5, "between 0 and 0.5"),
            ("bright_gain", self.bright_gain > 0, "positive"),
            ("shortcut_split", len(self.shortcut_split) == 3 and min(self.shortcut_split) >= 0
             and self.shortcut_split[0] > 0 and abs(sum(self.shortcut_split) - 1) < 1e-6,
             "three non-negative fractions summing to 1, train > 0"),
            ("size_scale", 0.25 <= self.size_scale <= 2, "between 0.25 and 2"),
            ("background_shift", -255 <= self.background_shift <= 255, "between -255 and 255"),
            ("overlay_size", 0.05 <= self.overlay_size <= 1, "between 0.05 and 1"),
            ("tint_strength", 0 < self.tint_strength <= 0.5, "above 0 and at most 0.5"),
            ("grain_sigma", 0 < self.grain_sigma <= 64, "above 0 and at most 64"),
            ("letterbox_scale", 0.25 <= self.letterbox_scale < 1, "at least 0.25 and below 1"),
            ("saturation_factor", 0 <= self.saturation_factor <= 3 and self.saturation_factor != 1,
             "between 0 and 3, not 1"),
            ("vignette_strength", 0 < self.vignette_strength <= 1, "above 0 and at most 1"),
        ]
        checks += [(cue.bias, getattr(self, cue.bias) == 0 or getattr(self, cue.share) > 0,
                    f"0 unless {cue.share} > 0 (the shortcut is {cue.kind} videos)") for cue in CUES]
        checks += [(name, 0 <= getattr(self, name) <= 1, "between 0 and 1")
                   for name in ("physics_defect_rate", "deformity_defect_rate", "text_defect_rate", "trusted_share",
                                *(field for cue in CUES for field in (cue.share, cue.bias)))]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """What one demo video shows and its ground truth."""

    video_path: str  # relative to the output folder
    prompt: str
    colour: str  # as shown (differs from the prompt's only for wrong_colour)
    shape: str
    motion: str
    physics_defect: str | None
    deformity_defect: str | None
    text_defect: str | None
    morph_target: str | None
    seed: tuple[int, ...]  # entropy of the random state used to draw positions and timings
    # nuisances (the ground truth does not depend on them)
    brightness: float = 1.0  # gain on every pixel value (clipped at 255)
    scale: float = 1.0  # object size relative to the drawn radius
    background_shift: int = 0  # added to the background's grey level
    overlay: float = 0.0  # width of a static caption box as a share of the frame (0: none)
    tint: float = 0.0  # strength of a warm colour cast (frame_edits.tint; 0: none)
    grain: float = 0.0  # grey levels of sensor grain (frame_edits.grain, drawn from the video's seed; 0: none)
    letterbox: float = 0.0  # the picture's share of each side on a black frame (frame_edits.letterbox; 0: none)
    saturation: float = 1.0  # colours this many times as saturated (frame_edits.saturate; 1: as drawn)
    vignette: float = 0.0  # strength of a lens vignette (frame_edits.vignette; 0: none)

    @property
    def nuisance(self) -> dict[str, float]:
        """The nuisance factors of the video, one per cue (they leave its ground truth unchanged)."""
        return {cue.name: getattr(self, cue.name) for cue in CUES}

    @property
    def labels(self) -> dict[str, int]:
        """1 (Pass) or 0 (Fail) per dimension."""
        return {"physics": int(self.physics_defect is None), "deformity": int(self.deformity_defect is None),
                "text_alignment": int(self.text_defect is None)}


def prompt_text(colour: str, shape: str, motion: str) -> str:
    """The prompt for a colour, shape and motion, e.g. 'a red ball falls to the ground'."""
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} {MOTIONS[motion]}"


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    """(colour, shape, motion) of a demo prompt; an InputError for any other text."""
    for combo in itertools.product(COLOURS, SHAPES, MOTIONS):
        if prompt_text(*combo) == prompt:
            return combo
    raise InputError(f"not a demo prompt ('a <colour> <shape> <motion>'): {prompt!r}", field="prompt")


def _defect_flags(rng: np.random.Generator, count: int, rate: float) -> np.ndarray:
    """`count` booleans with floor(rate*count + U) True values in random order."""
    flags = np.zeros(count, dtype=bool)
    flags[:min(count, int(math.floor(rate * count + rng.random())))] = True
    rng.shuffle(flags)
    return flags


def plan_videos(config: DemoDataConfig) -> list[list[VideoSpec]]:
    """The videos of every prompt (outer list: prompts), with defects assigned."""
    combos = list(itertools.product(COLOURS, SHAPES, MOTIONS))
    order = np.random.default_rng([config.seed, 0]).permutation(len(combos))
    plans = []
    for p in range(config.num_prompts):
        colour, shape, motion = combos[order[p]]
        prompt = prompt_text(colour, shape, motion)
        rng = np.random.default_rng([config.seed, 1, p])
        k = config.videos_per_prompt
        physics = _defect_flags(rng, k, config.physics_defect_rate)
        deformity = _defect_flags(rng, k, config.deformity_defect_rate)
        text = _defect_flags(rng, k, config.text_defect_rate)
        shown_cues = {cue: _defect_flags(np.random.default_rng(cue.stream(config.seed, 6, p)), k,
                                         getattr(config, cue.share))
                      for cue in CUES if getattr(config, cue.share) > 0}
        videos = []
        for v in range(k):
            text_defect = str(rng.choice(TEXT_DEFECTS)) if text[v] else None
            shown = _shown(rng, colour, shape, motion, text_defect)
            physics_defect = str(rng.choice(PHYSICS_DEFECTS)) if physics[v] else None
            deformity_defect = str(rng.choice(DEFORMITY_DEFECTS)) if deformity[v] else None
            morph_target = (str(rng.choice(_MORPH_TARGETS[shown["shape"]]))
                            if deformity_defect == "morph" else None)
            videos.append(VideoSpec(f"videos/p{p:03d}_v{v}.mp4", prompt, shown["colour"], shown["shape"],
                                    shown["motion"], physics_defect, deformity_defect, text_defect,
                                    morph_target, (config.seed, 2, p, v),
                                    **{cue.name: getattr(config, cue.value)
                                       for cue, flags in shown_cues.items() if flags[v]}))
        plans.append(videos)
    return plans


def _shown(rng: np.random.Generator, colour: str, shape: str, motion: str, defect: str | None) -> dict[str, str]:
    """What a video of the prompt (colour, shape, motion) shows: a text defect swaps one of them (drawn from
    `rng`, never a look-alike colour); any other defect kind, or None, shows the prompt."""
    shown = {"colour": colour, "shape": shape, "motion": motion}
    if defect == "wrong_colour":
        shown["colour"] = str(rng.choice([c for c in COLOURS if c != colour
                                          and frozenset((c, colour)) not in _SIMILAR_COLOURS]))
    elif defect == "wrong_shape":
        shown["shape"] = str(rng.choice([s for s in SHAPES if s != shape]))
    elif defect == "wrong_motion":
        shown["motion"] = str(rng.choice(_WRONG_MOTIONS[motion]))
    return shown


GRID_DEFECTS = ("none",) + PHYSICS_DEFECTS + DEFORMITY_DEFECTS + TEXT_DEFECTS


# the grid's axes by default: its first three cues at two values each (always in a grid video's name)
GRID_AXES: dict[str, tuple[float, ...]] = {"brightness": (1.0, 1.4), "scale": (1.0, 1.3), "background_shift": (0, 60)}


def grid_specs(prompt: str, defects: tuple[str, ...] = GRID_DEFECTS,
               nuisances: Mapping[str, Sequence[float]] | None = None, seed: int = 0,
               prompt_index: int = 0) -> list[VideoSpec]:
    """One video of `prompt` per setting of defect kind x the values of each cue's nuisance (`nuisances`, keyed by
    cue name, a cue left out at its neutral value; None: :data:`GRID_AXES`).

    A defect kind ("none" or one defect of a dimension) fixes the ground truth; the nuisance variants
    of one defect kind share their random state (position, timing, colours), so only the nuisance differs.
    A video's file name gives each cue's value after its `tag`: always for the grid's first three axes, otherwise
    only where it differs from the neutral value (so a grid keeps its names when a cue is added).
    """
    nuisances = GRID_AXES if nuisances is None else nuisances
    unknown = sorted(set(nuisances) - {cue.name for cue in CUES})
    if unknown:
        raise InputError(f"unknown nuisance {unknown[0]!r} (expected one of {', '.join(c.name for c in CUES)})",
                         field="nuisances")
    axes = {cue.name: tuple(nuisances.get(cue.name, (cue.neutral,))) for cue in CUES}
    colour, shape, motion = parse_prompt(prompt)
    specs = []
    for defect in defects:
        if defect not in GRID_DEFECTS:
            raise InputError(f"unknown defect kind {defect!r} (expected one of {', '.join(GRID_DEFECTS)})",
                             field="defects")
        d = GRID_DEFECTS.index(defect)  # a defect kind draws the same video whichever others are in the grid
        rng = np.random.default_rng([seed, 7, prompt_index, d])
        shown = _shown(rng, colour, shape, motion, defect)
        morph_target = str(rng.choice(_MORPH_TARGETS[shape])) if defect == "morph" else None
        for values in itertools.product(*axes.values()):
            nuisance = {cue.name: type(cue.neutral)(value) for cue, value in zip(CUES, values)}
            name = f"p{prompt_index:03d}_{defect}" + "".join(
                f"_{cue.tag}{value:g}" for cue, value in zip(CUES, nuisance.values())
                if cue.name in GRID_AXES or value != cue.neutral)
            specs.append(VideoSpec(
                f"grid/{name}.mp4", prompt, shown["colour"], shown["shape"], shown["motion"],
                defect if defect in PHYSICS_DEFECTS else None, defect if defect in DEFORMITY_DEFECTS else None,
                defect if defect in TEXT_DEFECTS else None, morph_target, (seed, 7, prompt_index, d), **nuisance))
    return specs
