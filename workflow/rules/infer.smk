# Scoring each trained model, in one process: `solireward infer` of the test videos (the grid's test split,
# shared by every cell), then the reward-hacking lab on the same model, `--then probe` (the stress probe of the
# same videos; config key `probe`) and `--then overopt` (best-of-n and GRPO against it on the over-optimisation
# grid of the test prompts, rendered once per task by overopt.smk; key `overopt`). A lab key set to null leaves
# its command and its files out. One process rather than three jobs: each process spends 3-4 s on a CPU
# importing torch, transformers and torchvision, which was a fifth of the demo's time when every command was a
# job of its own (docs/MEASURED.md); and so one GPU at most (`resources.infer.gpu` 0 or 1): scoring on several
# is `torchrun ... -m solireward.cli infer` by hand (docs/GUIDE.md).
# `infer` exits 3 when some videos could not be read: their records carry an `error`, the others are scored,
# the lab still runs and `evaluate` counts them, so that status is not a failed job (the log says which).

if rule_resources("infer").get("gpu", 0) > 1:
    raise WorkflowError(
        "config key resources.infer.gpu: a scoring job is one process, so at most 1 GPU "
        f"(got {rule_resources('infer')['gpu']}); score on several with torchrun by hand"
    )
PROBE_FILES = cell_files(f"{CELL}/probe/probe.json") if config["probe"] is not None else []
OVEROPT_FILES = cell_files(f"{CELL}/overopt/overopt.json") if config["overopt"] is not None else []


rule infer:
    input:
        model=f"{CELL}/model",
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
        grid=OVEROPT_GRID if config["overopt"] is not None else [],
    output:
        **lab_outputs(CELL, report_label="{label_source}__{pairing}/{head}__{loss}{mitigation}{replicate}"),
        scores=f"{CELL}/scores_test.json",
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
        lab=lab_commands,
    shell:
        "python -m solireward.cli infer --model_name_or_path {input.model:q} --input_file {input.videos:q} "
        "--output_file {output.scores:q} {params.flags} {params.lab} > {log:q} 2>&1 || [ $? -eq 3 ]"
