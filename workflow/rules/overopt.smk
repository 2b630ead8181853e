# Over-optimisation against each trained model: best-of-n and GRPO-style optimisation on a grid of demo
# generator settings for the held-out (test) prompts, gold = the ground truth (solireward overopt; config key
# `overopt`, null = none). The grid is rendered once per task by the demo generator (solireward overopt-grid;
# config key `overopt_grid`) and scored by every cell, so it needs the demo data.

OVEROPT_FILES = cell_files(f"{CELL}/overopt/overopt.json") if config["overopt"] is not None else []
OVEROPT_GRID = f"{R}/overopt_grid/{{task}}"


rule overopt_grid:
    input:
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
    output:
        directory(OVEROPT_GRID),
    log:
        f"{LOGS}/overopt_grid/{{task}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("overopt_grid")["threads"]
    resources:
        mem_mb=rule_resources("overopt_grid")["mem_mb"],
        runtime=rule_resources("overopt_grid")["runtime"],
    params:
        flags=cli_flags(config["overopt_grid"]),
    shell:
        "python -m solireward.cli overopt-grid --input_file {input.videos:q} --grid_dir {output:q} {params.flags} "
        "> {log:q} 2>&1"


rule overopt:
    input:
        model=f"{CELL}/model",
        grid=OVEROPT_GRID,
    output:
        json=f"{CELL}/overopt/overopt.json",
        md=report(
            f"{CELL}/overopt/overopt.md",
            caption="../report/overopt.rst",
            category="Reward hacking",
            subcategory="over-optimisation",
            labels={"model": "{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"},
        ),
        figure=f"{CELL}/overopt/overopt_curves.png",
    log:
        f"{LOGS}/overopt/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("overopt")["threads"]
    resources:
        mem_mb=rule_resources("overopt")["mem_mb"],
        runtime=rule_resources("overopt")["runtime"],
    params:
        outdir=subpath(output.json, parent=True),
        tags=eval_tags,
        flags=cli_flags(config["overopt"] or {}),
    shell:
        "python -m solireward.cli overopt --model_name_or_path {input.model:q} --grid_dir {input.grid:q} "
        "--output_dir {params.outdir:q} --tag {params.tags} {params.flags} > {log:q} 2>&1"
