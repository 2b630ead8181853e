"""solireward.study: the demo study's cells, its reference cell, per-cell flags and the config checks."""

from __future__ import annotations

import collections
import copy
import dataclasses
import logging
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from solireward.data.synthetic.plan import cue_goals
from solireward.errors import ConfigError
from solireward.study import Cell, Study, load_train_recipe

REPO = Path(__file__).resolve().parents[1]


def demo_config(**overrides) -> dict:
    """config/config.yaml with the schema's defaults filled in, as the workflow sees it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(copy.deepcopy(overrides))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def demo_study(**overrides) -> Study:
    config = demo_config(**overrides)
    return Study(config, load_train_recipe(config["train_recipe"], REPO))


def test_demo_cells_are_the_grid_then_each_ablation() -> None:
    study = demo_study(claim_replicates=1)
    cells = study.cells()
    assert len(cells) == 10 and [(c.head, c.loss) for c in study.cells("grid")] == [
        ("hpqa", "btt"), ("last_token", "btt"), ("attention", "btt"), ("hpqa", "bt"), ("hpqa", "bt_bce")]
    crossed = demo_study(claim_replicates=1, grid={**demo_config()["grid"], "crossed": True})
    assert len(crossed.cells()) == 14 and crossed.cells()[0] == Cell("phy_deform", "binary", "cross_prompt", "hpqa", "bt")
    assert [c.path for c in cells[-5:]] == ["phy_deform/binary__in_prompt/hpqa__btt",
                                           "phy_deform/pairwise__in_prompt/hpqa__btt",
                                           "phy_deform/biased__cross_prompt/hpqa__btt",
                                           "phy_deform/binary__cross_prompt/hpqa__btt__robust",
                                           "phy_deform/biased__cross_prompt/hpqa__btt__robust"]
    assert study.reference("phy_deform").path == "phy_deform/binary__cross_prompt/hpqa__btt"
    assert study.reference_tags() == {"label_source": "binary", "pairing": "cross_prompt", "head": "hpqa",
                                      "loss": "btt", "mitigation": "none"}
    assert [c.path for c in study.cells("ablation_label_source")] == [
        "phy_deform/pairwise__in_prompt/hpqa__btt", "phy_deform/biased__cross_prompt/hpqa__btt",
        "phy_deform/binary__cross_prompt/hpqa__btt"]


def test_a_mitigation_trains_the_reference_cell_of_each_binary_label_source_beside_its_twin() -> None:
    shortcut = {**demo_config()["data"]["demo"], "bright_share": 0.25, "shortcut_bias": 0.5,
                "shortcut_split": [0.6, 0.2, 0.2]}
    study = demo_study(data={"demo": shortcut}, mitigations={"jitter": {"label_smoothing": 0.1}}, claim_replicates=1,
                       ablations={"pairing": [], "label_source": ["biased"], "mitigation": ["jitter"]})
    assert [c.path for c in study.cells("ablation_mitigation")] == [
        "phy_deform/binary__cross_prompt/hpqa__btt__jitter", "phy_deform/binary__cross_prompt/hpqa__btt",
        "phy_deform/biased__cross_prompt/hpqa__btt__jitter", "phy_deform/biased__cross_prompt/hpqa__btt"]
    mitigated = study.cells("ablation_mitigation")[2]
    assert Cell.from_wildcards(type("W", (), mitigated.wildcards())) == mitigated
    options = study.train_options(mitigated)
    assert options["label_smoothing"] == 0.1 and options["pairing"] == "cross_prompt"
    assert options["batching"] == "in_batch"
    assert study.tags(mitigated)["mitigation"] == "jitter"
    with pytest.raises(ConfigError, match="is not defined under 'mitigations'"):
        demo_study(ablations={"pairing": [], "label_source": [], "mitigation": ["nope"]})
    with pytest.raises(ConfigError, match="planted shortcut"):
        demo_study(data={"demo": {"num_prompts": 20}}, ablations={"pairing": [], "label_source": ["biased"],
                                                                   "mitigation": []})


def test_train_options_layer_recipe_study_data_head_and_loss() -> None:
    study = demo_study()
    grid = study.train_options(Cell("phy_deform", "binary", "in_prompt", "last_token", "bt_bce"))
    recipe = load_train_recipe("config/demo_train.yaml", REPO)
    assert grid["pairing"] == "in_prompt" and grid["batching"] == "in_batch"
    assert grid["reduce_sequence"] == "last_token" and grid["bce_loss_coeff"] == 0.5
    assert grid["eval_steps"] == recipe["eval_steps"] and grid["learning_rate"] == recipe["learning_rate"]
    pairwise = study.train_options(Cell("phy_deform", "pairwise", "in_prompt", "hpqa", "btt"))
    assert pairwise["batching"] == "pairs_file" and "pairing" not in pairwise
    with pytest.raises(ConfigError, match="pairwise labels give in_prompt pairs"):
        study.train_options(Cell("phy_deform", "pairwise", "cross_prompt", "hpqa", "btt"))


def test_replicates_get_their_own_paths_and_seeds() -> None:
    study = demo_study(replicates=3, grid={**demo_config()["grid"], "crossed": True})
    cells = study.cells("grid")
    assert len(cells) == 27 and [c.path for c in cells[:3]] == [
        "phy_deform/binary__cross_prompt/hpqa__bt", "phy_deform/binary__cross_prompt/hpqa__bt__rep1",
        "phy_deform/binary__cross_prompt/hpqa__bt__rep2"]
    seed = study.train["seed"]
    assert [study.train_options(c)["seed"] for c in cells[:3]] == [seed, seed + 1, seed + 2]
    assert study.tags(cells[1])["replicate"] == "1"
    assert study.order({**cells[1].tags(True)}) == (0, 1)


def test_claim_replicates_train_the_reference_and_the_mitigation_cells_three_times() -> None:
    """The demo's claim_replicates: 3 seeds of the reference cell and of each mitigated cell with its twin."""
    study = demo_study()
    replicated = {c.path.removesuffix(c.replicate_suffix) for c in study.cells() if c.replicate}
    assert replicated == {"phy_deform/binary__cross_prompt/hpqa__btt", "phy_deform/biased__cross_prompt/hpqa__btt",
                          "phy_deform/binary__cross_prompt/hpqa__btt__robust",
                          "phy_deform/biased__cross_prompt/hpqa__btt__robust"}
    assert len(study.cells()) == 10 + 4 * 2 and len(study.cells("grid")) == 5 + 2
    single = Cell("phy_deform", "binary", "cross_prompt", "last_token", "bt")
    assert study.replicates_of(single) == 1 and study.tags(single)["replicate"] == "0"
    assert study.replicates_of(study.reference("phy_deform")) == 3
    assert demo_study(replicates=2, claim_replicates=1).replicates_of(single) == 2   # never below `replicates`


def test_reference_replicates_add_seeds_to_the_reference_cell_alone() -> None:
    """reference_replicates: 5 seeds of the reference cell, 3 of the other claim cells, in the ablation, the
    validation-split choice and the held-out cells alike; never fewer than claim_replicates."""
    selection = {"candidates": ["robust"], "label_sources": ["binary"]}
    study = demo_study(reference_replicates=5, selection=selection)
    reference = study.reference("phy_deform")
    assert study.is_reference(dataclasses.replace(reference, replicate=4)) and study.replicates_of(reference) == 5
    counts = collections.Counter(dataclasses.replace(c, replicate=0) for c in study.cells())
    assert counts[reference] == 5 and {counts[c] for c in counts if c != reference} == {1, 3}
    seeds = {study.seed(c) for c in study.selection_cells() if study.is_reference(c)}
    assert seeds == {study.seed(reference) + r for r in range(5)}
    others = [c for c in study.selection_cells() if not study.is_reference(c)]
    assert others and max(c.replicate for c in others) == 2
    assert demo_study(reference_replicates=2).replicates_of(reference) == 3   # never below claim_replicates
    single = demo_study(claim_replicates=1, reference_replicates=2)
    assert single.tags(reference)["replicate"] == "0"   # replicate tags once any cell is trained twice


@pytest.mark.parametrize("overrides, field, fragment", [
    ({"grid": {"heads": ["hpqa", "mean"], "losses": ["bt"], "default_head": "hpqa", "default_loss": "bt"}},
     "grid.heads", "mean is not defined under 'heads'"),
    ({"replicates": 2, "train_recipe": None, "train": {}}, "replicates", "give train.seed"),
    ({"claim_replicates": 3, "train_recipe": None, "train": {}}, "claim_replicates", "give train.seed"),
    ({"claim_replicates": 1, "reference_replicates": 2, "train_recipe": None, "train": {}}, "reference_replicates",
     "give train.seed"),
    ({"pairs": {"split": [0.8, 0.1, 0.1]}}, "data.demo.shortcut_split", "must follow the train split"),
])
def test_config_checks_name_the_key(overrides: dict, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as error:
        demo_study(**overrides)
    assert error.value.field == field


def test_the_written_study_config_reads_back_as_the_same_study(tmp_path: Path) -> None:
    study = demo_study()
    written = tmp_path / "study_config.yaml"
    written.write_text(study.config_yaml())
    again = Study.from_config_file(written)
    assert again.cells() == study.cells() and again.train == study.train
    with pytest.raises(ConfigError, match="expected a study config"):
        (tmp_path / "other.yaml").write_text("title: x\n")
        Study.from_config_file(tmp_path / "other.yaml")


def test_old_flag_names_still_work_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """`train --pairing explicit --pair_groups ...` and `pairs --strategy` are deprecated spellings."""
    import argparse

    from solireward.commands import train
    from solireward.commands._options import add_dataclass_arguments, parse_dataclass
    from solireward.data.pairing import PairingConfig

    parser = argparse.ArgumentParser()
    train.configure_parser(parser)
    args = parser.parse_args(["--model_name_or_path", "m", "--train_data", "t.json", "--output_dir", "o",
                              "--pairing", "explicit"])
    with caplog.at_level(logging.WARNING):
        config, *_ = train.resolve_options(args)
    assert (config.batching, config.pairing) == ("pairs_file", "cross_prompt")
    assert "option 'pairing explicit' is deprecated" in caplog.text and "use 'batching pairs_file'" in caplog.text
    args = parser.parse_args(["--model_name_or_path", "m", "--train_data", "t.json", "--output_dir", "o",
                              "--pair_groups", "in_prompt"])
    config, *_ = train.resolve_options(args)
    assert (config.batching, config.pairing) == ("in_batch", "in_prompt")
    assert "--pair_groups" not in parser.format_help() and "{cross_prompt,in_prompt}" in parser.format_help()

    pairs = argparse.ArgumentParser()
    add_dataclass_arguments(pairs, PairingConfig)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        options = parse_dataclass(PairingConfig, pairs.parse_args(["--output_dir", "o", "--labels", "l.jsonl",
                                                                   "--strategy", "in_prompt"]))
    assert options.pairing == "in_prompt" and "option 'strategy' is deprecated" in caplog.text


def study_of(*names: str) -> Study:
    """config/<name> files on top of config/config.yaml, merged and validated as snakemake merges config files."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name in names:
        update_config(config, yaml.safe_load((REPO / "config" / name).read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return Study(config, load_train_recipe(config["train_recipe"], REPO))


def shortcut_study() -> Study:
    """config/shortcut_study.yaml on top of config/config.yaml."""
    return study_of("shortcut_study.yaml")


def test_every_study_the_readme_runs_on_the_demo_data_validates_and_plans_its_choice() -> None:
    """Each README command with --configfile config/... (not a real-data config) names configs that merge, pass the
    schema and plan their cells; the five-seed overlay study trains seeds 42-46 in every cell of its choice."""
    readme = (REPO / "README.md").read_text()
    commands = [line.split("#")[0].split("--configfile")[1].split()
                for line in readme.splitlines() if line.startswith("snakemake") and "--configfile config/" in line
                and "--replace-workflow-config" not in line]
    studies = {tuple(Path(name).name for name in names): study_of(*(Path(name).name for name in names))
               for names in commands}
    assert len(studies) >= 5, list(studies)
    for names, study in studies.items():
        assert study.cells() or study.selection_cells(), names
    five = studies["shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml"]
    assert five.name == "overlay5" and five.held_out == ["biased_overlay"]
    assert {five.seed(c) for c in five.selection_cells()} == set(range(42, 47))
    family = studies["shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml", "overlay_family.yaml"]
    assert family.name == "overlay_family" and family.config["selection"]["candidates"] == ["trusted", "trusted_family"]
    assert "nuisance_overlay" not in family.config["mitigations"]["trusted_family"]   # the held-out cue's own kind
    tint = studies["shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml", "tint_held_out.yaml"]
    assert tint.name == "tint" and tint.held_out == ["biased_tint"] and "biased_overlay" in tint.choosing_sources()
    for name in tint.config["selection"]["candidates"]:   # no candidate changes colours: the held-out cue's kind
        assert "color_jitter" not in tint.config["mitigations"][name], name
    grain = studies["shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml", "tint_held_out.yaml",
                    "grain_held_out.yaml"]
    assert grain.name == "grain" and grain.held_out == ["biased_grain"] and "biased_tint" in grain.choosing_sources()
    assert {grain.seed(c) for c in grain.selection_cells()} == {42, 43, 44}
    recipes = grain.config["mitigations"]
    assert recipes["trusted_family_long"] == {**recipes["trusted_family"], "max_steps": 600,
                                              "consistency_warmup_ratio": 0.6}   # one family, written once
    letterbox_names = ("shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml", "tint_held_out.yaml",
                       "grain_held_out.yaml", "letterbox_held_out.yaml")
    letterbox = studies[letterbox_names]
    assert letterbox.name == "letterbox" and letterbox.held_out == ["biased_letterbox"]
    assert letterbox.config["selection"]["candidates"] == ["trusted_family_long"]   # chosen by the grain study
    assert {letterbox.seed(c) for c in letterbox.selection_cells()} == set(range(42, 47))
    assert letterbox.config["overopt_grid"]["letterbox"] == [0.0, 0.75]
    saturation = studies[(*letterbox_names, "saturation_held_out.yaml")]
    assert saturation.name == "saturation" and saturation.held_out == ["biased_saturation"]
    assert "biased_letterbox" in saturation.choosing_sources()   # the cue the wider twins answer chooses now
    assert {saturation.seed(c) for c in saturation.selection_cells()} == {42, 43, 44}
    recipes = saturation.config["mitigations"]
    assert recipes["trusted_family_wide"] == {**recipes["trusted_family_long"], "nuisance_zoom": [0.75, 1.3]}
    for name in saturation.config["selection"]["candidates"]:   # no candidate changes colours: the held-out cue's kind
        assert "color_jitter" not in recipes[name], name
    vignette = studies[(*letterbox_names, "saturation_held_out.yaml", "vignette_held_out.yaml")]
    assert vignette.name == "vignette" and vignette.held_out == ["biased_vignette"]
    assert set(vignette.choosing_sources()) == {"binary", "biased_letterbox", "biased_saturation"}
    recipes = vignette.config["mitigations"]
    assert recipes["trusted_family_colour"] == {**recipes["trusted_family_wide"], "color_jitter": 1.0,
                                                "color_jitter_saturation": 1.0}
    saturation_names = (*letterbox_names, "saturation_held_out.yaml")
    for confirm, recipe, held_out in ((studies[(*saturation_names, "saturation_confirm.yaml")],
                                       "trusted_family_long", "biased_saturation"),
                                      (studies[(*saturation_names, "vignette_held_out.yaml", "vignette_confirm.yaml")],
                                       "trusted_family_wide", "biased_vignette")):
        # the study's chosen recipe on five seeds none of its cells trained, nothing left to choose
        assert confirm.config["selection"]["candidates"] == [recipe] and confirm.held_out == [held_out]
        assert {confirm.seed(c) for c in confirm.chosen_cells(recipe)} == set(range(45, 50))
    colour = studies[(*saturation_names, "vignette_held_out.yaml", "vignette_confirm.yaml",
                      "vignette_confirm_colour.yaml")]
    assert colour.config["selection"]["candidates"] == ["trusted_family_colour"]
    assert {colour.seed(c) for c in colour.chosen_cells("trusted_family_colour")} == set(range(45, 50))
    assert vignette.config["selection"]["rule"] == "verdicts"   # the rule its documented choice was made by
    more = studies[(*saturation_names, "saturation_confirm.yaml", "reference_seeds.yaml")]
    assert more.name == "saturation_confirm"   # the same study, its reference cell on ten more seeds
    held_out = more.chosen_cells("trusted_family_long")
    assert {more.seed(c) for c in held_out if more.is_reference(c)} == set(range(45, 60))
    assert {more.seed(c) for c in held_out if not more.is_reference(c)} == set(range(45, 50))
    wins = studies[(*saturation_names, "vignette_held_out.yaml", "vignette_wins.yaml")]
    assert wins.name == "vignette_wins" and wins.config["selection"] == {**vignette.config["selection"], "rule": "wins"}


# the goal lists the studies of docs/MEASURED.md ran with, written out in each config before `cue_goals`
GENERAL = {"gap:best_of_n=0.3", "below_reference=5", "cost=2"}
RAN_WITH = {
    ("shortcut_study.yaml",): (GENERAL | {"probe:brightness=0.3", "probe:frames_x0.5=0.25", "probe:frames_x2=0.25",
                                          "probe:resolution_x0.5=0.25", "share:brightness=0.1",
                                          "share:background_shift=0.1"}, {"probe:zoom_x1.3=0.3", "share:scale=0.1"}),
    ("shortcut_study.yaml", "trusted_study.yaml"): (GENERAL | {"probe:brightness=0.3", "probe:zoom_x1.3=0.3",
                                                               "share:brightness=0.1", "share:background_shift=0.1",
                                                               "share:scale=0.1"}, set()),
    ("shortcut_study.yaml", "overlay_held_out.yaml", "overlay_five_seeds.yaml", "tint_held_out.yaml",
     "grain_held_out.yaml"): (GENERAL | {"probe:brightness=0.3", "probe:zoom_x1.3=0.3", "probe:overlay=0.3",
                                         "probe:tint=0.3", "share:brightness=0.1", "share:background_shift=0.1",
                                         "share:scale=0.1", "share:overlay=0.1", "share:tint=0.1"},
                              {"probe:grain=0.3", "share:grain=0.1"}),
}


@pytest.mark.parametrize("names", RAN_WITH, ids=lambda names: names[-1])
def test_each_planted_cues_own_goals_give_the_goals_the_studies_ran_with(names: tuple[str, ...]) -> None:
    """config `cue_goals` writes each cue's goals once: with the general goals of report.mitigation_goals they are
    the lists each study spelt out before, the held-out cue's apart (never in the choice)."""
    study = study_of(*names)
    config = study.config
    choosing, held_out = cue_goals(config["data"]["demo"], study.held_out, config["cue_goals"])
    assert (set(config["report"]["mitigation_goals"]) | set(choosing), set(held_out)) == RAN_WITH[names]
    assert not (config["selection"] or {}).get("held_out_goals")


def test_the_shortcut_study_chooses_with_three_label_sources_and_holds_out_object_size() -> None:
    study = shortcut_study()
    demo = study.config["data"]["demo"]
    for share, bias in (("bright_share", "shortcut_bias"), ("size_share", "size_bias"),
                        ("background_share", "background_bias")):   # each cue on 3 of 8 videos, bias 0.9
        assert demo[share] * demo["videos_per_prompt"] == 3 and demo[bias] == 0.9
    assert study.choosing_sources() == ["binary", "biased", "biased_background"] and study.held_out == ["biased_size"]
    assert study.planted_sources() == ["biased", "biased_size", "biased_background"]
    choosing = study.selection_cells()
    assert len(choosing) == 27 and {c.replicate for c in choosing} == {0, 1, 2}
    assert not any(c.label_source == "biased_size" for c in choosing)   # the held-out cue takes no part
    chosen = study.chosen_cells("family")
    assert len(chosen) == 4 * 2 * 3 and {c.mitigation for c in chosen} == {"family", "none"}
    assert {c.label_source for c in chosen} == {"binary", "biased", "biased_background", "biased_size"}
    assert all(c in choosing for c in chosen if c.label_source != "biased_size")   # the choice's own models
    assert study.train_options(next(c for c in chosen if c.label_source == "biased_size" and c.mitigation != "none")
                               )["nuisance_zoom"] == [1.0, 1.3]
    assert demo_study().chosen_cells("robust") == []   # no held-out cue: no cells after the choice


def test_a_trusted_fine_tune_needs_trusted_labels_only_where_a_cell_trains_it() -> None:
    """The shortcut study defines `trusted` for the studies layered on it but gives no trusted labels: valid while
    no cell uses the recipe, an error naming the key once the choice does."""
    assert "trusted" in shortcut_study().config["mitigations"]
    config = copy.deepcopy(shortcut_study().config)
    config["selection"]["candidates"] = ["exposure", "trusted"]
    with pytest.raises(ConfigError, match="fine-tuning on trusted labels needs them") as error:
        Study(config, load_train_recipe(config["train_recipe"], REPO))
    assert error.value.field == "mitigations.trusted.fine_tune_on"


@pytest.mark.parametrize("held_out, fragment", [(["biased"], "also chooses the recipe"),
                                                (["biased_overlay"], "data.demo.overlay_bias > 0")])
def test_a_held_out_cue_that_chooses_or_is_not_planted_names_the_key(held_out: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as error:
        demo_study(selection={"candidates": ["robust"], "label_sources": ["binary", "biased"], "held_out": held_out})
    assert error.value.field == "selection.held_out"
