# Read only each tile's window of every selected scene (COG range requests),
# aligned to the tile's 10 m / 20 m grids; raw DN, manifest written last.


rule download:
    input:
        scenes=f"{RESULTS}/{{region}}/{{year}}/scenes/{{tile}}.json",
    output:
        manifest=f"{RESOURCES}/{{region}}/{{year}}/stack/{{tile}}/manifest.json",
    log:
        "logs/{region}/{year}/download/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/download/{tile}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        network=1,
    params:
        out_dir=lambda w, output: str(Path(output.manifest).parent),
        tile_size_m=TILE_SIZE_M,
        bands=",".join(config["bands"]["b10m"] + config["bands"]["b20m"] + ["SCL"]),
        retries=config["download"]["retries"],
        backoff_s=config["download"]["backoff_s"],
        timeout_s=config["stac"]["timeout_s"],
        http="--allow-http" if config["stac"]["allow_http"] else "",
    shell:
        "jointseg -v download {input.scenes} --out-dir {params.out_dir}"
        " --tile-size-m {params.tile_size_m} --bands {params.bands:q}"
        " --retries {params.retries} --backoff-s {params.backoff_s}"
        " --timeout-s {params.timeout_s} {params.http} > {log} 2>&1"
