# Paper-style tables and figures from every cell's metrics, scores and training logs; the outputs marked
# with report() make up `snakemake --report results/<study>/report.html` (captions in workflow/report/).


rule study_config:
    output:
        report(f"{R}/study_config.yaml", caption="../report/study_config.rst", category="5. Configuration"),
    log:
        f"{LOGS}/study_config.log",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    params:
        text=DESIGN.config_yaml(),
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


rule report:
    input:
        metrics=lambda wildcards: report_files(f"{CELL}/metrics_test.json"),
        scores=lambda wildcards: report_files(f"{CELL}/scores_test.json"),
        models=lambda wildcards: report_files(f"{CELL}/model"),
        config=f"{R}/study_config.yaml",
        probe=lambda wildcards: (report_files(f"{CELL}/probe/probe.json") if config["probe"] is not None else []),
        overopt=lambda wildcards: (
            report_files(f"{CELL}/overopt/overopt.json") if config["overopt"] is not None else []
        ),
        selection=f"{R}/selection/chosen.json" if SELECTION else [],
    output:
        readme=report(f"{R}/report/README.md", caption="../report/readme.rst", category="1. Report"),
        summary=report(f"{R}/report/summary.html", caption="../report/summary.rst", category="1. Report"),
        tables=report(
            directory(f"{R}/report/tables"),
            patterns=["{name}.html"],
            caption="../report/tables.rst",
            category="2. Tables",
            labels={"table": "{name}"},
        ),
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="3. Figures",
            labels={"figure": "{name}"},
        ),
    log:
        f"{LOGS}/report.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("report")["threads"]
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    params:
        outdir=subpath(output.readme, parent=True),
        logs=lambda wildcards, input: [f"{m}/metrics.jsonl" for m in input.models],
        hacking=lambda wildcards, input: cli_flags(
            {
                "probe": list(input.probe),
                "overopt": list(input.overopt),
                "selection": str(input.selection) if input.selection else None,
            }
        ),
        flags=cli_flags({"title": f"SoliReward study: {STUDY}", **config["report"], **report_goals(test=True)}),
    shell:
        "python -m solireward.cli report --metrics {input.metrics:q} --scores {input.scores:q} "
        "--training_logs {params.logs:q} --study_config {input.config:q} --output_dir {params.outdir:q} {params.flags} "
        "{params.hacking} > {log:q} 2>&1"
