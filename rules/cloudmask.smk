# Per-scene clear-sky masks on the tile's 10 m grid from SCL (+ optional s2cloudless).


rule cloudmask:
    input:
        manifest=f"{RESOURCES}/{{region}}/{{year}}/stack/{{tile}}/manifest.json",
    output:
        mask=f"{RESULTS}/{{region}}/{{year}}/cloudmask/{{tile}}.tif",
    log:
        "logs/{region}/{year}/cloudmask/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/cloudmask/{tile}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=stage_settings("cloudmask"),
    shell:
        "jointseg -v cloudmask {input.manifest:q} {output.mask:q} {params.settings}"
        " > {log:q} 2>&1"
