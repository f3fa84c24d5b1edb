# Biennial change between the configured years, and the paper's tables
# filled from whatever this run computed (each table names its sources).


rule change:
    input:
        maps=lambda w: expand(f"{RESULTS}/{w.region}/{{year}}/isa_1m.tif", year=YEARS),
        probs=lambda w: expand(
            f"{RESULTS}/{w.region}/{{year}}/isa_prob_1m.tif", year=YEARS
        ),
    output:
        json=f"{RESULTS}/{{region}}/change/change.json",
        csv=report(
            f"{RESULTS}/{{region}}/change/change.csv",
            caption="../report/change.rst",
            category="Change",
            subcategory="{region}",
        ),
    log:
        "logs/{region}/change.log",
    benchmark:
        "benchmarks/out/{region}/change.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=lambda w, output: str(Path(output.json).parent),
        maps=lambda w, input: " ".join(
            shlex.quote(f"{y}={p}") for y, p in zip(YEARS, input.maps)
        ),
        probs=lambda w, input: " ".join(
            f"--probs {shlex.quote(f'{y}={p}')}" for y, p in zip(YEARS, input.probs)
        ),
        groups=change_group_args,
        consistency="--consistency" if config["change"]["consistency"] else "",
        confident=config["change"]["confident"],
    shell:
        "jointseg -v change --maps {params.maps} {params.probs} {params.groups}"
        " {params.consistency} --confident {params.confident:q}"
        " --region {wildcards.region} --out {params.out:q} --no-progress > {log:q} 2>&1"


rule paper_tables:
    input:
        reports=accuracy_targets(),
        # Table 1 reads each report's sibling products.json (rules/products.smk)
        products=products_targets(),
        change=change_targets(),
    output:
        index=report(f"{RESULTS}/paper_tables/index.md", category="Paper tables"),
        tables=report(
            multiext(
                f"{RESULTS}/paper_tables/",
                *[f"{t}.{ext}" for t in PAPER_TABLES for ext in ("csv", "md")],
            ),
            category="Paper tables",
        ),
    log:
        "logs/paper_tables.log",
    benchmark:
        "benchmarks/out/paper_tables.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out=lambda w, output: str(Path(output.index).parent),
        change=lambda w, input: " ".join(
            f"--change {shlex.quote(c)}" for c in input.change
        ),
    shell:
        "jointseg -v paper-tables --reports {input.reports:q} {params.change}"
        " --out {params.out:q} > {log:q} 2>&1"
