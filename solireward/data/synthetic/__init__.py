"""The synthetic demo data set (`solireward demo-data`): small reward videos with known ground truth.

Each prompt names a colour, a shape and a motion ("a red ball falls to the ground"). Each video
shows one coloured shape over a plain background with a ground strip and is encoded as a real mp4
(yuv420p; lossless H.264, CRF 0, when PyAV has libx264, else MPEG-4 Part 2 at its finest
quantiser). Lossless coding makes the decoded frames exactly reproducible: libx264's lossy mode
was seen to produce different bitstreams for the same frames under heavy CPU load, even
single-threaded. Videos of one prompt mix defects:

* physics (Fail = ``teleport``: jumps a third of the frame between two frames; ``hover``: stops in
  mid-air, or a sliding object lifts off the ground and floats; ``anti_gravity``: moves up when it
  should come down, or a sliding object flies up). Pass: it moves as the prompt and gravity say
  (falls accelerate, bouncing loses height, a tossed object slows, stops and comes back, slides
  decelerate along the ground).
* deformity (Fail = ``morph``: turns into another shape; ``tear``: splits into two parts that drift
  apart; ``melt``: flattens and spreads into a puddle). Pass: shape and size stay the same.
* text alignment (Fail = ``wrong_colour``, ``wrong_shape`` or ``wrong_motion``: the video shows a
  clearly different colour, shape or motion from the start). Physics and deformity defects keep the
  prompt's colour, shape and kind of motion, so the three dimensions are independent.

Every deformation and physics defect starts between 25 % and 70 % of the clip and is at full size
by about 75 %, so it shows in the 8 frames that segment sampling takes.

Within a prompt each dimension gets ``floor(rate * videos_per_prompt + U)`` defects (U uniform in
[0, 1)), so the expected Fail rate is exactly the given rate and both classes occur under most
prompts. Defaults: physics and deformity Fail 0.37 each (phy_deform Pass ≈ 0.63² ≈ 0.40), text
alignment Fail 0.5.

Simulated annotators: annotator ``aNN`` flips each true Pass/Fail label with its own rate, drawn
uniformly from [annotator_noise_min, annotator_noise_max]. Pairwise choices (``a``, ``b`` or
``tie``, from the true phy_deform quality, equal qualities being a tie) are wrong with that rate
plus ``pairwise_noise_extra``; a wrong choice is one of the other two answers at random.

Nuisances and planted shortcuts (off by default; the default data set is unchanged by them): each cue of
:data:`~solireward.data.synthetic.plan.CUES` is a nuisance rendered on its own share of each prompt's videos, drawn
independently of the other cues, which leaves the ground truth as it is: brightness (``--bright_share``, gain
``--bright_gain``), object size (``--size_share``, ``--size_scale``), background shade (``--background_share``,
``--background_shift``), a static caption box (``--overlay_share``, ``--overlay_size``), a warm colour cast
(``--tint_share``, ``--tint_strength``), sensor grain (``--grain_share``, ``--grain_sigma``), a letterbox
(``--letterbox_share``, ``--letterbox_scale``), vivid colours (``--saturation_share``, ``--saturation_factor``) and
a lens vignette (``--vignette_share``, ``--vignette_strength``). With a cue's bias b > 0 (``--shortcut_bias`` for
brightness, ``--size_bias``, ``--background_bias``, ``--overlay_bias``, ``--tint_bias``, ``--grain_bias``,
``--letterbox_bias``, ``--saturation_bias``, ``--vignette_bias``) the simulated
annotators of the prompts in the train split (the split `solireward pairs` makes with ``--shortcut_split`` and
``--shortcut_seed``) mark a video that shows the cue Pass on physics and
deformity with probability b whatever it shows, as biased real annotators can (pairwise choices stay unbiased), in
a label file and label source of the cue's own (``annotations_biased.csv`` = ``biased`` for brightness,
``annotations_biased_size.csv`` = ``biased_size``, ...); val and test labels stay unbiased. :func:`grid_specs`
renders the over-optimisation grid of one prompt: every defect kind x brightness x object size x background shade
(x caption box x colour cast x grain x letterbox x saturation x vignette), each with its ground truth.

Everything is derived from ``--seed``: the same flags give byte-identical CSV files and identical
frames. The random state of prompt ``p`` depends only on (seed, p), so with the same seed and
``--videos_per_prompt`` a data set with fewer prompts holds the first prompts of a larger one.
"""

from solireward.data.synthetic.annotators import annotator_rates, shortcut_prompts
from solireward.data.synthetic.generate import generate_demo_data
from solireward.data.synthetic.plan import (
    COLOURS, DEFORMITY_DEFECTS, DIMENSIONS, GRID_AXES, GRID_DEFECTS, MOTIONS, PHYSICS_DEFECTS, SHAPES, TEXT_DEFECTS,
    DemoDataConfig, VideoSpec, grid_specs, parse_prompt, plan_videos, prompt_text,
)
from solireward.data.synthetic.render import render_video

__all__ = [
    "COLOURS", "DEFORMITY_DEFECTS", "DIMENSIONS", "GRID_AXES", "GRID_DEFECTS", "MOTIONS", "PHYSICS_DEFECTS", "SHAPES",
    "TEXT_DEFECTS", "DemoDataConfig", "VideoSpec", "annotator_rates", "generate_demo_data", "grid_specs",
    "parse_prompt", "plan_videos", "prompt_text", "render_video", "shortcut_prompts",
]
