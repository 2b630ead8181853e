# Choosing a mitigation on the validation split (config key `selection`; `snakemake choose_mitigation`): the
# candidates' cells (solireward.study.Study.selection_cells) are scored on the validation videos and pairs, a
# stress probe of the validation videos and an over-optimisation grid of the validation prompts, with the
# rules of the test split re-pointed; `solireward report --choose` ranks the candidates by the study's goals
# (`report.mitigation_goals` and the choosing cues' `cue_goals`, never the held-out cues' goals) and writes
# results/<study>/selection/chosen.json, which the study's report then cites. The test split takes no part. It
# is a checkpoint: with held-out cues (`selection.held_out`) the cells of the held-out label sources train with
# the recipe it chose (common.smk, report_files), so their jobs exist only after it ran.

VAL = f"{CELL}/val"
VAL_GRID = f"{R}/overopt_grid_val/{{task}}"


use rule infer as infer_val with:
    input:
        model=f"{CELL}/model",
        videos=f"{REFERENCE_PAIRS}/videos_val.json",
        grid=VAL_GRID if config["overopt"] is not None else [],
    output:
        **lab_outputs(VAL),
        scores=f"{VAL}/scores.json",
    log:
        f"{LOGS}/infer_val/{CELL_LOG}",


use rule evaluate as evaluate_val with:
    input:
        scores=f"{VAL}/scores.json",
        pairs=f"{REFERENCE_PAIRS}/val.json",
    output:
        json=f"{VAL}/metrics.json",
        md=f"{VAL}/metrics.md",
    log:
        f"{LOGS}/evaluate_val/{CELL_LOG}",


use rule overopt_grid as overopt_grid_val with:
    input:
        videos=f"{REFERENCE_PAIRS}/videos_val.json",
    output:
        directory(VAL_GRID),
    log:
        f"{LOGS}/overopt_grid_val/{{task}}.log",


checkpoint choose_mitigation:
    input:
        metrics=selection_files(f"{VAL}/metrics.json"),
        config=f"{R}/study_config.yaml",
        probe=selection_files(f"{VAL}/probe/probe.json") if config["probe"] is not None else [],
        overopt=selection_files(f"{VAL}/overopt/overopt.json") if config["overopt"] is not None else [],
    output:
        readme=f"{R}/selection/README.md",
        chosen=f"{R}/selection/chosen.json",
    log:
        f"{LOGS}/choose_mitigation.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("choose_mitigation")["threads"]
    resources:
        mem_mb=rule_resources("choose_mitigation")["mem_mb"],
        runtime=rule_resources("choose_mitigation")["runtime"],
    params:
        outdir=subpath(output.readme, parent=True),
        hacking=lambda wildcards, input: cli_flags({"probe": list(input.probe), "overopt": list(input.overopt)}),
        flags=cli_flags(
            {
                **config["report"],
                **report_goals(test=False),
                "title": f"SoliReward study {STUDY}: choosing a mitigation on the validation split",
                "split": "validation",
                "choose": True,
                "choice_rule": SELECTION.get("rule"),  # absent: the command's default
            }
        ),
    shell:
        "python -m solireward.cli report --metrics {input.metrics:q} --study_config {input.config:q} "
        "--output_dir {params.outdir:q} {params.flags} {params.hacking} > {log:q} 2>&1"
