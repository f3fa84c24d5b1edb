# What `jointseg view` shows, per region and year: the layer manifest (viewer.json: which
# products exist and how each is drawn), a QGIS project styled the same way (isa.qgs)
# and, with infer.sr_quicklook, a quicklook of the 1 m SR image for the report.
#   snakemake viewer   then   jointseg view results/<region>/<year>
# Inputs: the mosaics and the accuracy report (it names the truth and WorldCover files
# the viewer shows, and waits for the baseline mosaic when there is one); the per-tile
# SR quicklooks when configured (not in batch mode: their paths are in the batch
# manifests there, and the viewer finds them on disk).

VIEWER_TARGETS = expand(
    f"{RESULTS}/{{region}}/{{year}}/viewer.json", region=REGIONS, year=YEARS
)
SR_REPORT = SR_QUICKLOOK and not BATCH_BLOCK


rule viewer_manifest:
    input:
        map=f"{RESULTS}/{{region}}/{{year}}/isa_1m.tif",
        prob=f"{RESULTS}/{{region}}/{{year}}/isa_prob_1m.tif",
        report=f"{RESULTS}/{{region}}/{{year}}/accuracy/report.json",
        sr=lambda w: product_tiles(w, "sr") if SR_REPORT else [],
    output:
        **(
            {
                "sr_png": report(
                    f"{RESULTS}/{{region}}/{{year}}/sr_1m.png",
                    caption="../report/sr_quicklook.rst",
                    category="Maps",
                    subcategory="{region} {year}",
                )
            }
            if SR_REPORT
            else {}
        ),
        manifest=f"{RESULTS}/{{region}}/{{year}}/viewer.json",
        qgs=f"{RESULTS}/{{region}}/{{year}}/isa.qgs",
    log:
        "logs/{region}/{year}/viewer.log",
    benchmark:
        "benchmarks/out/{region}/{year}/viewer.tsv"
    localrule: True
    conda:
        "../envs/view.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder=lambda w, input: str(Path(input.map).parent),
        sr=lambda w, output: (
            f"--write-sr-quicklook {shlex.quote(output.sr_png)}" if SR_REPORT else ""
        ),
    shell:
        "jointseg -v view {params.folder:q} --write-manifest {output.manifest:q}"
        " --write-qgs {output.qgs:q} {params.sr} > {log:q} 2>&1"


rule viewer:
    input:
        VIEWER_TARGETS,
    localrule: True
