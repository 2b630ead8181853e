# The embedded demo: a generated data set and a tiny random backbone (used when the config asks).


rule demo_data:
    output:
        **demo_outputs(),
        annotations=f"{R}/data/annotations.csv",
        pairwise=f"{R}/data/pairwise_annotations.csv",
        ground_truth=f"{R}/data/ground_truth.csv",
        readme=f"{R}/data/README.md",
        videos=directory(f"{R}/data/videos"),
    log:
        f"{LOGS}/demo_data.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("demo_data")["threads"]
    resources:
        mem_mb=rule_resources("demo_data")["mem_mb"],
        runtime=rule_resources("demo_data")["runtime"],
    params:
        outdir=subpath(output.annotations, parent=True),
        flags=cli_flags(config["data"]["demo"] or {}),
    shell:
        "python -m solireward.cli demo-data --output_dir {params.outdir:q} {params.flags} > {log:q} 2>&1"


rule tiny_model:
    output:
        directory(f"{R}/backbone"),
    log:
        f"{LOGS}/tiny_model.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("tiny_model")["threads"]
    resources:
        mem_mb=rule_resources("tiny_model")["mem_mb"],
        runtime=rule_resources("tiny_model")["runtime"],
    params:
        model_type=config["backbone"]["model_type"],
        flags=cli_flags(config["backbone"]["tiny"]),
    shell:
        "python -m solireward.cli tiny-model --model_type {params.model_type:q} {params.flags} "
        "--output_dir {output:q} > {log:q} 2>&1"
