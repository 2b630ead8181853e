# One reward model per cell of the study (solireward.study): task x label source x pairing x head x loss.


rule train_config:
    output:
        report(
            f"{CELL}/train_config.yaml",
            caption="../report/train_config.rst",
            category="5. Configuration",
            subcategory="training per model",
            labels={"model": "{task}/{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"},
        ),
    log:
        f"{LOGS}/train_config/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    params:
        text=cell_train_yaml,
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


rule train:
    input:
        config=f"{CELL}/train_config.yaml",
        train=train_pairs,
        val=f"{DATA}/val.json",
        backbone=train_start,
    output:
        model=directory(f"{CELL}/model"),
        done=touch(f"{CELL}/reward_model.done"),
    log:
        f"{LOGS}/train/{CELL_LOG}",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        # the SLURM executor plugin's names: --gpus (the job's total), --nodes, --cpus-per-gpu (0: threads per task)
        gpu=TRAIN_LAUNCH["gpus"] * TRAIN_LAUNCH["nodes"],
        nodes=TRAIN_LAUNCH["nodes"],
        cpus_per_gpu=rule_resources("train").get("cpus_per_gpu", 0),
    params:
        launch=f"{TRAIN_LAUNCH['procs']} {TRAIN_LAUNCH['nodes']} {TRAIN_LAUNCH['gpus']}",
    shell:
        f"bash {TRAIN_SCRIPT} "
        "{output.model:q} {log:q} {threads} {params.launch} --config {input.config:q} "
        "--model_name_or_path {input.backbone:q} --train_data {input.train:q} --eval_data {input.val:q}"
