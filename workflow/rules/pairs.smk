# Pairs per reward task, label source (binary / pairwise) and pairing (cross_prompt / in_prompt), split by prompt.


rule pairs:
    input:
        unpack(pairs_inputs),
    output:
        train=f"{DATA}/train.json",
        val=f"{DATA}/val.json",
        test=f"{DATA}/test.json",
        videos_val=f"{DATA}/videos_val.json",
        videos_test=f"{DATA}/videos_test.json",
        videos_train=f"{DATA}/videos_train.json",
        summary=f"{DATA}/summary.json",
    log:
        f"{LOGS}/pairs/{{task}}/{{label_source}}__{{pairing}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("pairs")["threads"]
    resources:
        mem_mb=rule_resources("pairs")["mem_mb"],
        runtime=rule_resources("pairs")["runtime"],
    params:
        outdir=subpath(output.summary, parent=True),
        flags=pairs_flags,
    shell:
        "python -m solireward.cli pairs --labels {input.labels:q} --output_dir {params.outdir:q} {params.flags} "
        "> {log:q} 2>&1"
