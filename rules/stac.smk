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
        configfile=CONFIGFILE,
        api_url=lambda w: (
            "" if DEMO["enabled"] else f"--api-url {config['stac']['api_url']}"
        ),
        collection=config["stac"]["collection"],
        provider=config["stac"]["provider"],
        start=lambda w: f"{w.year}-{config['stac']['date_window']['start']}",
        end=lambda w: f"{w.year}-{config['stac']['date_window']['end']}",
        max_cloud=config["stac"]["max_cloud_cover"],
        max_scenes=config["stac"]["max_scenes"],
        sign="--sign" if config["stac"]["sign_planetary_computer"] else "--no-sign",
        http="--allow-http" if config["stac"]["allow_http"] else "",
        timeout_s=config["stac"]["timeout_s"],
        tile_size_m=TILE_SIZE_M,
    shell:
        "jointseg -v search --config {params.configfile:q} {params.api_url}"
        " --region {wildcards.region} --year {wildcards.year} --tile {wildcards.tile}"
        " --collection {params.collection:q} --provider {params.provider:q}"
        " --start {params.start} --end {params.end}"
        " --max-cloud-cover {params.max_cloud} --max-scenes {params.max_scenes}"
        " --tile-size-m {params.tile_size_m} {params.sign} {params.http}"
        " --timeout-s {params.timeout_s}"
        " --out {output} > {log} 2>&1"
