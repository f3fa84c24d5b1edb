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
        classes=",".join(str(c) for c in config["cloudmask"]["scl_masked_classes"]),
        dilation_m=config["cloudmask"]["dilation_m"],
        combine=config["cloudmask"]["combine"],
        s2c=config["cloudmask"]["s2cloudless"],
    shell:
        "jointseg -v cloudmask {input.manifest} {output.mask}"
        " --scl-classes {params.classes:q} --dilation-m {params.dilation_m}"
        " --combine {params.combine:q} --s2c-threshold {params.s2c[threshold]}"
        " --s2c-average-over {params.s2c[average_over]}"
        " --s2c-dilation-size {params.s2c[dilation_size]} > {log} 2>&1"
