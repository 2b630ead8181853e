# Paper-style tables and figures from every cell's metrics and scores.


rule study_config:
    output:
        f"{R}/study_config.yaml",
    params:
        text=study_config_yaml(),
    log:
        f"{LOGS}/study_config.log",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


rule report:
    input:
        metrics=cell_files(f"{CELL}/metrics_test.json"),
        scores=cell_files(f"{CELL}/scores_test.json"),
        config=f"{R}/study_config.yaml",
    output:
        readme=f"{R}/report/README.md",
    params:
        outdir=lambda wildcards, output: str(Path(output.readme).parent),
        flags=cli_flags({"title": f"SoliReward study: {STUDY}", "reference": report_reference(),
                         **config["report"]}),
    log:
        f"{LOGS}/report.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    shell:
        "export OMP_NUM_THREADS={threads}; "
        "python -m solireward.cli report --metrics {input.metrics:q} --scores {input.scores:q} "
        "--study_config {input.config:q} --output_dir {params.outdir:q} {params.flags} > {log:q} 2>&1"
