# A VideoAlign-style preference CSV (path_A, path_B, prompt, label A/B/same) as training data: with
# data.pairwise_format = videoalign, `import_bench` converts the study's pairwise file into the votes
# that `solireward pairs` reads for the pairwise label source (imports/preferences/votes.csv). With the
# demo, the generated votes are first exported as such a CSV (imports/demo_votes/preferences.csv), so
# the conversion runs on real files in the demo too.


rule import_bench:
    input:
        import_bench_input,
    output:
        votes=f"{R}/imports/{{conversion}}/votes.csv",
        preferences=f"{R}/imports/{{conversion}}/preferences.csv",
        pairs=f"{R}/imports/{{conversion}}/pairs.json",
        videos=f"{R}/imports/{{conversion}}/videos.json",
        summary=report(
            f"{R}/imports/{{conversion}}/summary.json",
            caption="../report/import_bench.rst",
            category="6. Data",
            labels={"import": "{conversion}"},
        ),
    log:
        f"{LOGS}/import_bench/{{conversion}}.log",
    wildcard_constraints:
        conversion="|".join(CONVERSIONS),
    conda:
        "../../envs/solireward.yaml"
    threads: rule_resources("import_bench")["threads"]
    resources:
        mem_mb=rule_resources("import_bench")["mem_mb"],
        runtime=rule_resources("import_bench")["runtime"],
    params:
        outdir=subpath(output.summary, parent=True),
        format=lambda wildcards: CONVERSIONS[wildcards.conversion],
        flags=lambda wildcards: cli_flags(
            {"video_root": config["data"]["video_root"]} if wildcards.conversion == "preferences" else {}
        ),
    shell:
        "python -m solireward.cli import-bench --format {params.format} --input {input:q} "
        "--output_dir {params.outdir:q} {params.flags} > {log:q} 2>&1"
