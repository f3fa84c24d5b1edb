# Which Sentinel-2 L2A scenes cover this tile in this year: a real STAC API
# search (pystac-client). For the demo the API is a loopback rustac server
# over the simulated catalogue, started on demand (see jointseg/simulate/servers.py).


rule search_scenes:
    input:
        demo_catalogue,
    output:
        f"{RESULTS}/{{region}}/{{year}}/scenes/{{tile}}.json",
    log:
        "logs/{region}/{year}/search/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/search/{tile}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        network=1,
    params:
        settings=stage_settings("search"),
    shell:
        "jointseg -v search {params.settings} --region {wildcards.region}"
        " --year {wildcards.year} --tile {wildcards.tile} --out {output:q} > {log:q} 2>&1"
