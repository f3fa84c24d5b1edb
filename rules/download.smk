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
        settings=stage_settings("download"),
    shell:
        "jointseg -v download {input.scenes:q} --out-dir {params.out_dir:q}"
        " {params.settings} > {log:q} 2>&1"
