# Label import: annotator votes -> one label table with agreement statistics (labels_<source>/: the demo's
# planted-shortcut labels of a biased label source, e.g. labels_biased/).


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
        biased=BIASED_WILDCARD,
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


# The label audit: which cheap video statistics predict a label source's Pass within a prompt, before any
# training (`snakemake label_audit`: every binary label source of the study).


rule audit_labels:
    input:
        annotation_files,
    output:
        report=f"{R}/labels{{biased}}/label_audit.json",
        markdown=f"{R}/labels{{biased}}/label_audit.md",
    log:
        f"{LOGS}/audit_labels{{biased}}.log",
    wildcard_constraints:
        biased=BIASED_WILDCARD,
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("audit_labels")["threads"]
    resources:
        mem_mb=rule_resources("audit_labels")["mem_mb"],
        runtime=rule_resources("audit_labels")["runtime"],
    params:
        flags=cli_flags({"video_root": config["data"]["video_root"]}),
    shell:
        "python -m solireward.cli audit-labels --input {input:q} --output {output.report:q} {params.flags} "
        "> {log:q} 2>&1"
