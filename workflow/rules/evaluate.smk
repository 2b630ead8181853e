# Metrics of each cell on the shared test split: pair accuracy, ROC-AUC, F1, hacking diagnostics.


rule evaluate:
    input:
        scores=f"{CELL}/scores_test.json",
        pairs=f"{REFERENCE_PAIRS}/test.json",
    output:
        json=f"{CELL}/metrics_test.json",
        md=report(
            f"{CELL}/metrics_test.md",
            caption="../report/metrics_test.rst",
            category="4. Metrics per model",
            subcategory="{task}",
            labels={"model": "{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"},
        ),
    log:
        f"{LOGS}/evaluate/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("evaluate")["threads"]
    resources:
        mem_mb=rule_resources("evaluate")["mem_mb"],
        runtime=rule_resources("evaluate")["runtime"],
    params:
        tags=eval_tags,
        flags=cli_flags(config["evaluate"]),
    shell:
        "python -m solireward.cli evaluate --scores {input.scores:q} --pairs {input.pairs:q} --output {output.json:q} "
        "--tag {params.tags} {params.flags} > {log:q} 2>&1"
