# One reward model per grid cell: task x label source x pairing x head x loss.


rule train_config:
    output:
        f"{CELL}/train_config.yaml",
    params:
        text=cell_config_yaml,
    log:
        f"{LOGS}/train_config/{{task}}/{{labels}}__{{pairing}}/{{head}}__{{loss}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


rule train:
    input:
        config=f"{CELL}/train_config.yaml",
        train=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/train.json",
        val=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/val.json",
        backbone=backbone_dir(),
    output:
        model=directory(f"{CELL}/model"),
        done=touch(f"{CELL}/reward_model.done"),
    log:
        f"{LOGS}/train/{{task}}/{{labels}}__{{pairing}}/{{head}}__{{loss}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        gpu=rule_resources("train").get("gpu", 0),
    shell:
        "export OMP_NUM_THREADS={threads}; "
        f"{GPU_LAUNCHER} "
        "$launch -m solireward.cli train --config {input.config:q} --model_name_or_path {input.backbone:q} "
        "--train_data {input.train:q} --eval_data {input.val:q} --output_dir {output.model:q} "
        "> {log:q} 2>&1"
