# The over-optimisation grid: demo generator settings for the held-out (test) prompts with their ground truth,
# rendered once per task by the demo generator (solireward overopt-grid; config key `overopt_grid`), so it needs
# the demo data. Every cell's scoring job optimises against it (`--then overopt` in infer.smk; config key
# `overopt`, null = none).

OVEROPT_GRID = f"{R}/overopt_grid/{{task}}"


rule overopt_grid:
    input:
        videos=f"{REFERENCE_PAIRS}/videos_test.json",
    output:
        directory(OVEROPT_GRID),
    log:
        f"{LOGS}/overopt_grid/{{task}}.log",
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("overopt_grid")["threads"]
    resources:
        mem_mb=rule_resources("overopt_grid")["mem_mb"],
        runtime=rule_resources("overopt_grid")["runtime"],
    params:
        flags=cli_flags(config["overopt_grid"]),
    shell:
        "python -m solireward.cli overopt-grid --input_file {input.videos:q} --grid_dir {output:q} {params.flags} "
        "> {log:q} 2>&1"
