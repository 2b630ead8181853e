# Over-optimisation against each trained model: best-of-n and GRPO-style optimisation on a grid of demo
# generator settings for held-out (test) prompts, gold = the ground truth (solireward overopt; config key
# `overopt`, null = none). The grid is rendered by the demo generator, so it needs the demo data.

OVEROPT_FILES = cell_files(f"{CELL}/overopt/overopt.json") if config["overopt"] is not None else []


rule overopt:
    input:
        model=f"{CELL}/model",
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
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
        "python -m solireward.cli overopt --model_name_or_path {input.model:q} --input_file {input.videos:q} "
        "--output_dir {params.outdir:q} --tag {params.tags} {params.flags} > {log:q} 2>&1"
