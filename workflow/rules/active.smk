# Rounds of the labelling loop (config key `active`, null = none; `snakemake active_rounds`; the plan:
# solireward.active.rounds). For one cell, each strategy and the random control, each seed: round r scores the
# pool with round r-1's model, selects a batch (the same size for every strategy: active.batch of the training
# videos, budget.yaml), answers it with the demo's simulated annotators, imports it with the study's clean
# annotations and the earlier rounds' answers, pairs (the study's split: the test and validation files must
# come out byte for byte the study's, or the job fails), retrains, and scores the model on the study's test
# pairs and test over-optimisation grid (the test-split rules re-pointed). Round 0 is the study's training of
# the cell where the seed is one of its replicates. Folders: results/<study>/active/<task>/pool/ (the grid on
# the training prompts), <strategy>/seed<s>/round<r>/ (a round), round0/seed<s>/ (a round 0 the study does not
# train), report/ (`solireward active-report`).


wildcard_constraints:
    run=r"round0/seed[0-9]+|[a-z_]+/seed[0-9]+/round[1-9][0-9]*",
    strategy="[a-z_]+",
    seed="[0-9]+",
    round="[1-9][0-9]*",


localrules:
    active_budget,
    active_train_config,
    active_manifest,


# -- the pool: the demo generator's grid on the training prompts, as mp4 files with their ground truth


use rule overopt_grid as active_pool_grid with:
    input:
        videos=lambda wildcards: f"{cell_pairs(wildcards)}/videos_train.json",
    output:
        directory(f"{ACT}/pool_grid"),
    log:
        f"{LOGS}/active/{{task}}/pool_grid.log",
    params:
        flags=lambda wildcards: cli_flags(
            {**config["overopt_grid"], "num_prompts": None, **rounds_plan().pool, "seed": rounds_plan().pool_seed}
        ),


rule grid_pool:
    input:
        grid=f"{ACT}/pool_grid",
    output:
        pool=f"{ACT}/pool/pool.jsonl",
        truth=f"{ACT}/pool/ground_truth.csv",
        videos=directory(f"{ACT}/pool/videos"),
    log:
        f"{LOGS}/active/{{task}}/pool.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("grid_pool")["threads"]
    resources:
        mem_mb=rule_resources("grid_pool")["mem_mb"],
        runtime=rule_resources("grid_pool")["runtime"],
    params:
        outdir=subpath(output.pool, parent=True),
    shell:
        "python -m solireward.cli grid-pool --grid_dir {input.grid:q} --output_dir {params.outdir:q} > {log:q} 2>&1"


rule active_budget:
    input:
        videos=lambda wildcards: f"{cell_pairs(wildcards)}/videos_train.json",
    output:
        budget=f"{ACT}/budget.yaml",
    log:
        f"{LOGS}/active/{{task}}/budget.log",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=1,
    params:
        batch=lambda wildcards: rounds_plan().batch,
    script:
        "../scripts/budget.py"


# -- a round: select, label (simulated), merge, pair


use rule infer as active_infer_pool with:
    input:
        model=previous_model,
        videos=f"{ACT}/pool/pool.jsonl",
    output:
        scores=f"{ROUND}/pool_scores.json",
    log:
        f"{ROUND_LOG}/infer_pool.log",


rule select:
    input:
        budget=f"{ACT}/budget.yaml",
        pool=f"{ACT}/pool/pool.jsonl",
        videos=f"{ACT}/pool/videos",
        scores=lambda wildcards: [f"{ROUND}/pool_scores.json"] if wildcards.strategy in SCORED else [],
        labelled=lambda wildcards: answered(wildcards, int(wildcards.round) - 1),
        held_out=held_out_files,
    output:
        sheet=f"{ROUND}/batch/to_label.csv",
        manifest=f"{ROUND}/batch/manifest.jsonl",
        summary=f"{ROUND}/batch/select.json",
    log:
        f"{ROUND_LOG}/select.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("select")["threads"]
    resources:
        mem_mb=rule_resources("select")["mem_mb"],
        runtime=rule_resources("select")["runtime"],
    params:
        outdir=subpath(output.summary, parent=True),
        files=lambda wildcards, input: cli_flags(
            {"scores": list(input.scores), "labelled": list(input.labelled), "held_out": list(input.held_out)}
        ),
        flags=lambda wildcards: cli_flags(
            {
                **rounds_plan().select,
                "strategy": wildcards.strategy,
                "task": wildcards.task,
                "seed": rounds_plan().select_seed(int(wildcards.seed), int(wildcards.round)),
            }
        ),
    shell:
        "python -m solireward.cli select --config {input.budget:q} --pool {input.pool:q} "
        "--output_dir {params.outdir:q} {params.files} {params.flags} > {log:q} 2>&1"


rule simulate_labels:
    input:
        sheet=f"{ROUND}/batch/to_label.csv",
        truth=f"{ACT}/pool/ground_truth.csv",
        labelled=lambda wildcards: answered(wildcards, int(wildcards.round) - 1),
    output:
        f"{ROUND}/answers.csv",
    log:
        f"{ROUND_LOG}/simulate_labels.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("simulate_labels")["threads"]
    resources:
        mem_mb=rule_resources("simulate_labels")["mem_mb"],
        runtime=rule_resources("simulate_labels")["runtime"],
    params:
        flags=cli_flags(simulated_annotators()),
    shell:
        "python -m solireward.cli simulate-labels --batch {input.sheet:q} --ground_truth {input.truth:q} "
        "--labelled {input.labelled:q} --output {output:q} {params.flags} > {log:q} 2>&1"


use rule labels as active_labels with:
    input:
        lambda wildcards: answered(wildcards, int(wildcards.round)),
    output:
        table=f"{ROUND}/labels/labels.jsonl",
        report_json=f"{ROUND}/labels/label_report.json",
        report_md=f"{ROUND}/labels/label_report.md",
    log:
        f"{ROUND_LOG}/labels.log",
    params:
        report_dir=f"{ROUND}/labels",
        flags=cli_flags({"video_root": config["data"]["video_root"], **config["labels"]}),


rule active_pairs:
    input:
        labels=f"{ROUND}/labels/labels.jsonl",
        study=held_out_files,
    output:
        train=f"{ROUND}/pairs/train.json",
        val=f"{ROUND}/pairs/val.json",
        test=f"{ROUND}/pairs/test.json",
        videos_val=f"{ROUND}/pairs/videos_val.json",
        videos_test=f"{ROUND}/pairs/videos_test.json",
        summary=f"{ROUND}/pairs/summary.json",
    log:
        f"{ROUND_LOG}/pairs.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("active_pairs")["threads"]
    resources:
        mem_mb=rule_resources("active_pairs")["mem_mb"],
        runtime=rule_resources("active_pairs")["runtime"],
    params:
        outdir=subpath(output.summary, parent=True),
        study=lambda wildcards: cell_pairs(wildcards),
        flags=lambda wildcards: cli_flags(
            DESIGN.pairs_options(wildcards.task, _REFERENCE_DATA["label_source"], rounds_plan().cell.pairing)
        ),
    shell:
        "(python -m solireward.cli pairs --labels {input.labels:q} --output_dir {params.outdir:q} {params.flags} && "
        "for name in test.json val.json videos_test.json videos_val.json; do "
        'cmp -s "{params.outdir}/$name" "{params.study}/$name" || {{ echo "active_pairs: {params.outdir}/$name '
        "differs from the study's {params.study}/$name: the merged labels moved the split\" >&2; exit 1; }}; "
        "done) > {log:q} 2>&1"


# -- the models: train (round 0 where the study has none), then the study's test-split measures


use rule train_config as active_train_config with:
    output:
        f"{ACT}/seed{{seed}}/train_config.yaml",
    log:
        f"{LOGS}/active/{{task}}/seed{{seed}}/train_config.log",
    params:
        text=lambda wildcards: DESIGN.train_options_yaml(rounds_plan().train_cell(int(wildcards.seed), DESIGN)),


use rule train as active_train with:
    input:
        config=run_train_config,
        train=lambda wildcards: run_pairs(wildcards)["train"],
        val=lambda wildcards: run_pairs(wildcards)["val"],
        backbone=initial_model,
    output:
        model=directory(f"{RUN}/model"),
        done=touch(f"{RUN}/reward_model.done"),
    log:
        f"{RUN_LOG}/train.log",


use rule infer as active_infer with:
    input:
        model=f"{RUN}/model",
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
        grid=OVEROPT_GRID,
    output:
        **lab_outputs(RUN, probe=False),
        scores=f"{RUN}/scores_test.json",
    log:
        f"{RUN_LOG}/infer.log",
    params:
        flags=cli_flags(config["infer"]),
        lab=lambda wildcards, input, output: lab_commands(wildcards, input, output, tagged=run_tags),


use rule evaluate as active_evaluate with:
    input:
        scores=f"{RUN}/scores_test.json",
        pairs=f"{REFERENCE_PAIRS}/test.json",
    output:
        json=f"{RUN}/metrics_test.json",
        md=f"{RUN}/metrics_test.md",
    log:
        f"{RUN_LOG}/evaluate.log",
    params:
        tags=run_tags,
        flags=cli_flags(config["evaluate"]),


# -- the report


rule active_manifest:
    output:
        f"{ACTIVE}/rounds.yaml",
    log:
        f"{LOGS}/active/manifest.log",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    params:
        text=lambda wildcards: manifest_text(),
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


rule active_report:
    input:
        manifest=f"{ACTIVE}/rounds.yaml",
        metrics=lambda wildcards: report_inputs("metrics"),
        overopt=lambda wildcards: report_inputs("overopt"),
        batches=lambda wildcards: report_inputs("batch"),
    output:
        readme=f"{ACTIVE}/report/README.md",
        table=f"{ACTIVE}/report/rounds.md",
        json=f"{ACTIVE}/report/rounds.json",
        figure=f"{ACTIVE}/report/gap_vs_labels.png",
    log:
        f"{LOGS}/active/report.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("active_report")["threads"]
    resources:
        mem_mb=rule_resources("active_report")["mem_mb"],
        runtime=rule_resources("active_report")["runtime"],
    params:
        outdir=subpath(output.readme, parent=True),
        flags=cli_flags({"title": f"SoliReward study {STUDY}: rounds of the labelling loop"}),
    shell:
        "python -m solireward.cli active-report --rounds {input.manifest:q} --output_dir {params.outdir:q} "
        "{params.flags} > {log:q} 2>&1"
