# Over-optimisation against each trained model: best-of-n and GRPO-style optimisation on a grid of demo
# generator settings for held-out (test) prompts, gold = the ground truth (solireward overopt; config key
# `overopt`, null = none). The grid is rendered by the demo generator, so it needs the demo data.

if config["overopt"] is not None and config["data"]["demo"] is None:
    raise WorkflowError(
        "config key overopt: the over-optimisation grid is rendered by the demo generator "
        "(data.demo); set overopt: null for a study on real data"
    )

# the planted shortcut (data.demo.shortcut_bias) biases the train split's annotators: the split of `pairs`
_demo, _pairs = config["data"]["demo"] or {}, config["pairs"]
if _demo.get("shortcut_bias", 0) and (
    list(_demo.get("shortcut_split", [0.8, 0.1, 0.1])) != list(_pairs.get("split", [0.8, 0.1, 0.1]))
    or _demo.get("shortcut_seed", 0) != _pairs.get("seed", 0)
):
    raise WorkflowError(
        "config key data.demo.shortcut_split / shortcut_seed: the planted shortcut must follow the "
        "train split of `solireward pairs`: give the values of pairs.split and pairs.seed"
    )

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
            labels={"model": "{labels}__{pairing}/{head}__{loss}{replicate}"},
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
        outdir=lambda wildcards, output: str(Path(output.json).parent),
        tags=eval_tags,
        flags=cli_flags(config["overopt"] or {}),
    shell:
        "export OMP_NUM_THREADS={threads}; "
        "python -m solireward.cli overopt --model_name_or_path {input.model:q} --input_file {input.videos:q} "
        "--output_dir {params.outdir:q} --tag {params.tags} {params.flags} > {log:q} 2>&1"
