# Stress probe of each trained model on the shared test videos: how its score moves under perturbations
# that should or should not move it (solireward probe; config key `probe`, null = none).

PROBE_FILES = cell_files(f"{CELL}/probe/probe.json") if config["probe"] is not None else []


rule probe:
    input:
        model=f"{CELL}/model",
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
    output:
        json=f"{CELL}/probe/probe.json",
        md=report(
            f"{CELL}/probe/probe.md",
            caption="../report/probe.rst",
            category="Reward hacking",
            subcategory="stress probe",
            labels={"model": "{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"},
        ),
    log:
        f"{LOGS}/probe/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("probe")["threads"]
    resources:
        mem_mb=rule_resources("probe")["mem_mb"],
        runtime=rule_resources("probe")["runtime"],
    params:
        outdir=subpath(output.json, parent=True),
        tags=eval_tags,
        flags=cli_flags(config["probe"] or {}),
    shell:
        "python -m solireward.cli probe --model_name_or_path {input.model:q} --input_file {input.videos:q} "
        "--output_dir {params.outdir:q} --tag {params.tags} {params.flags} > {log:q} 2>&1"
