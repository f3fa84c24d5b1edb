# Accuracy per region and year: agreement with ESA WorldCover on its 10 m grid,
# with the reference raster (the demo's simulated truth), a stratified probability
# sample (accuracy.design) with Olofsson et al. (2014) estimates, per city and zone.


rule assess_accuracy:
    input:
        unpack(accuracy_inputs),
    output:
        report=f"{RESULTS}/{{region}}/{{year}}/accuracy/report.json",
        md=report(
            f"{RESULTS}/{{region}}/{{year}}/accuracy/report.md",
            category="Accuracy",
            subcategory="{region} {year}",
        ),
        confusion=f"{RESULTS}/{{region}}/{{year}}/accuracy/confusion.csv",
        samples=f"{RESULTS}/{{region}}/{{year}}/accuracy/samples.gpkg",
        plots=report(
            multiext(
                f"{RESULTS}/{{region}}/{{year}}/accuracy/",
                "confusion.png",
                "cities.png",
                "agreement.png",
            ),
            caption="../report/accuracy.rst",
            category="Accuracy",
            subcategory="{region} {year}",
        ),
    log:
        "logs/{region}/{year}/accuracy.log",
    benchmark:
        "benchmarks/out/{region}/{year}/accuracy.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=lambda w, output: str(Path(output.report).parent),
        a=config["accuracy"],
        worldcover=worldcover_source,
        optional=accuracy_optional_args,
    shell:
        "jointseg -v accuracy-report --map {input.map:q} --prob {input.prob:q}"
        " --worldcover {params.worldcover:q} --year {wildcards.year}"
        " --region {wildcards.region} {params.optional}"
        " --threshold {params.a[threshold]:q}"
        " --design {params.a[design]:q} --min-distance-m {params.a[min_distance_m]:q}"
        " --interval {params.a[interval]:q}"
        " --target-se {params.a[target_se]:q} --floor {params.a[floor]:q}"
        " --seed {params.a[seed]:q} --out {params.out:q} --no-progress > {log:q} 2>&1"


rule accuracy_report:
    input:
        accuracy_targets(),
    localrule: True
