# Biennial change between the configured years, and the paper's tables
# filled from whatever this run computed (each table names its sources and epochs).


CHANGE_PAIRS = [f"{y0}_{y1}" for y0, y1 in zip(YEARS[:-1], YEARS[1:])]

# The file stems of jointseg.assess.tables.PAPER_TABLES (tests/test_tables.py checks).
PAPER_TABLES = [
    "table1_products",
    "table2_baseline",
    "table3_cities",
    "table4_isa_area",
    "table5_growth",
]
# One folder per set of years (results/paper_tables/2017-2019-2021-2023/,
# results/<region>/change/2017-2019-2021-2023/): a run of other years writes its own
# tables and change maps, never over these.
PAPER_EPOCHS = "-".join(str(y) for y in sorted(YEARS))
PAPER_TABLES_DIR = f"{RESULTS}/paper_tables/{PAPER_EPOCHS}"


rule change:
    input:
        maps=lambda w: expand(f"{RESULTS}/{w.region}/{{year}}/isa_1m.tif", year=YEARS),
        probs=lambda w: expand(
            f"{RESULTS}/{w.region}/{{year}}/isa_prob_1m.tif", year=YEARS
        ),
        reports=lambda w: expand(
            f"{RESULTS}/{w.region}/{{year}}/accuracy/report.json", year=YEARS
        ),
        # the demo's simulated truth per year: change accuracy, change-sample labels
        truth=lambda w: (
            expand(f"{SIM_DIR}/{{year}}/truth/isa_1m.tif", year=YEARS)
            if DEMO["enabled"] and not config["accuracy"]["truth"]
            else []
        ),
    output:
        json=f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/change.json",
        csv=report(
            f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/change.csv",
            caption="../report/change.rst",
            category="Change",
            subcategory="{region}",
        ),
        md=report(
            f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/change.md",
            caption="../report/change.rst",
            category="Change",
            subcategory="{region}",
        ),
        area_plot=report(
            f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/area_per_year.png",
            caption="../report/change_area.rst",
            category="Change",
            subcategory="{region}",
        ),
        growth_map=report(
            f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/growth_map.png",
            caption="../report/change_growth_map.rst",
            category="Change",
            subcategory="{region}",
        ),
        first_year=f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/first_isa_year.tif",
        maps=expand(
            f"{RESULTS}/{{{{region}}}}/change/{PAPER_EPOCHS}/change_{{pair}}.tif",
            pair=CHANGE_PAIRS,
        ),
        sample=f"{RESULTS}/{{region}}/change/{PAPER_EPOCHS}/change_sample.gpkg",
    log:
        f"logs/{{region}}/change-{PAPER_EPOCHS}.log",
    benchmark:
        f"benchmarks/out/{{region}}/change-{PAPER_EPOCHS}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=lambda w, output: str(Path(output.json).parent),
        maps=lambda w, input: year_args("--maps", input.maps),
        probs=lambda w, input: year_args("--probs", input.probs),
        reports=lambda w, input: year_args("--reports", input.reports),
        truth=lambda w, input: year_args("--truth", input.truth),
        groups=change_group_args,
        c=config["change"],
        a=config["accuracy"],
    shell:
        "jointseg -v change {params.maps} {params.probs} {params.reports} {params.truth}"
        " {params.groups} --method {params.c[method]:q} --confident {params.c[confident]:q}"
        " --penalty {params.c[penalty]:q}"
        " --sample-target-se {params.a[target_se]:q} --sample-floor {params.a[floor]:q}"
        " --seed {params.a[seed]:q} --region {wildcards.region:q} --out {params.out:q}"
        " --no-progress > {log:q} 2>&1"


rule paper_tables:
    input:
        reports=accuracy_targets(),
        # Table 1 reads each report's sibling products.json (rules/products.smk)
        products=products_targets(),
        change=change_targets(),
    output:
        index=report(
            f"{PAPER_TABLES_DIR}/index.md",
            category="Paper tables",
            subcategory=PAPER_EPOCHS,
        ),
        index_json=f"{PAPER_TABLES_DIR}/index.json",
        tables=report(
            multiext(
                f"{PAPER_TABLES_DIR}/",
                *[f"{t}.{ext}" for t in PAPER_TABLES for ext in ("csv", "md")],
            ),
            category="Paper tables",
            subcategory=PAPER_EPOCHS,
        ),
        change_accuracy=report(
            multiext(f"{PAPER_TABLES_DIR}/change_accuracy", ".csv", ".md"),
            category="Paper tables",
            subcategory=PAPER_EPOCHS,
        ),
    log:
        f"logs/paper_tables/{PAPER_EPOCHS}.log",
    benchmark:
        f"benchmarks/out/paper_tables/{PAPER_EPOCHS}.tsv"
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
