# Label import: annotator votes -> one label table with agreement statistics (labels_biased/: the demo's
# planted-shortcut labels, the `biased` label source).


rule labels:
    input:
        annotation_files,
    output:
        table=f"{R}/labels{{biased}}/labels.jsonl",
        report_json=f"{R}/labels{{biased}}/label_report.json",
        report_md=f"{R}/labels{{biased}}/label_report.md",
    log:
        f"{LOGS}/labels{{biased}}.log",
    wildcard_constraints:
        biased="(_biased)?",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("labels")["threads"]
    resources:
        mem_mb=rule_resources("labels")["mem_mb"],
        runtime=rule_resources("labels")["runtime"],
    params:
        report_dir=subpath(output.table, parent=True),
        flags=cli_flags({"video_root": config["data"]["video_root"], **config["labels"]}),
    shell:
        "python -m solireward.cli labels --input {input:q} --output {output.table:q} "
        "--report_dir {params.report_dir:q} {params.flags} > {log:q} 2>&1"
