# A VideoAlign-style preference CSV (path_A, path_B, prompt, label A/B/same) as training data: with
# data.pairwise_format = videoalign, `import_bench` converts the study's pairwise file into the votes
# that `solireward pairs` reads for the pairwise label source (imports/preferences/votes.csv). With the
# demo, the generated votes are first exported as such a CSV (imports/demo_votes/preferences.csv), so
# the conversion runs on real files in the demo too.


rule import_bench:
    input:
        import_bench_input,
    output:
        votes=f"{R}/imports/{{bench}}/votes.csv",
        preferences=f"{R}/imports/{{bench}}/preferences.csv",
        pairs=f"{R}/imports/{{bench}}/pairs.json",
        videos=f"{R}/imports/{{bench}}/videos.json",
        summary=report(
            f"{R}/imports/{{bench}}/summary.json",
            caption="../report/import_bench.rst",
            category="6. Data",
            labels={"import": "{bench}"},
        ),
    log:
        f"{LOGS}/import_bench/{{bench}}.log",
    wildcard_constraints:
        bench="|".join(IMPORTS),
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("import_bench")["threads"]
    resources:
        mem_mb=rule_resources("import_bench")["mem_mb"],
        runtime=rule_resources("import_bench")["runtime"],
    params:
        outdir=lambda wildcards, output: str(Path(output.summary).parent),
        format=lambda wildcards: IMPORTS[wildcards.bench],
        flags=lambda wildcards: cli_flags(
            {"video_root": config["data"]["video_root"]} if wildcards.bench == "preferences" else {}
        ),
    shell:
        "python -m solireward.cli import-bench --format {params.format} --input {input:q} "
        "--output_dir {params.outdir:q} {params.flags} > {log:q} 2>&1"
