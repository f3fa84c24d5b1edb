# Per-pixel median (or best-available pixel) of clear observations per tile,
# harmonised across the 2022 processing-baseline change, plus a COUNT band.


rule composite:
    input:
        manifest=f"{RESOURCES}/{{region}}/{{year}}/stack/{{tile}}/manifest.json",
        mask=f"{RESULTS}/{{region}}/{{year}}/cloudmask/{{tile}}.tif",
    output:
        c10=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_10m.tif",
        c20=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_20m.tif",
    log:
        "logs/{region}/{year}/composite/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/composite/{tile}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=stage_settings("composite"),
    shell:
        "jointseg -v composite {input.manifest:q} {input.mask:q} {output.c10:q}"
        " {output.c20:q} {params.settings} > {log:q} 2>&1"
