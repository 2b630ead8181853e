# Pairs per reward task, label source (binary / pairwise) and pairing strategy, split by prompt.


rule pairs:
    input:
        unpack(pairs_inputs),
    output:
        train=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/train.json",
        val=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/val.json",
        test=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/test.json",
        videos_test=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/videos_test.json",
        summary=f"{R}/pairs/{{task}}/{{labels}}__{{pairing}}/summary.json",
    log:
        f"{LOGS}/pairs/{{task}}/{{labels}}__{{pairing}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("pairs")["threads"]
    resources:
        mem_mb=rule_resources("pairs")["mem_mb"],
        runtime=rule_resources("pairs")["runtime"],
    params:
        outdir=lambda wildcards, output: str(Path(output.summary).parent),
        flags=pairs_flags,
    shell:
        "export OMP_NUM_THREADS={threads}; "
        "python -m solireward.cli pairs --labels {input.labels:q} --output_dir {params.outdir:q} {params.flags} "
        "> {log:q} 2>&1"
