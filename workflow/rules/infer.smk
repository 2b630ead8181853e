# Score the test videos (the grid's test split, shared by every cell) with each trained model.
# `infer` exits 3 when some videos could not be read: their records carry an `error`, the others
# are scored, and `evaluate` counts them, so that status is not a failed job (the log says which).


rule infer:
    input:
        model=f"{CELL}/model",
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
    output:
        f"{CELL}/scores_test.json",
    log:
        f"{LOGS}/infer/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("infer")["threads"]
    resources:
        mem_mb=rule_resources("infer")["mem_mb"],
        runtime=rule_resources("infer")["runtime"],
        gpu=rule_resources("infer").get("gpu", 0),
    params:
        flags=cli_flags(config["infer"]),
    shell:
        f"source {LAUNCH_SCRIPT} {{resources.gpu}} 1 {{resources.gpu}}; "
        '"${{launch[@]}}" -m solireward.cli infer --model_name_or_path {input.model:q} --input_file {input.videos:q} '
        "--output_file {output:q} {params.flags} > {log:q} 2>&1 || [ $? -eq 3 ]"
