# Batch mode (grid.batch_block = N > 0): one job per stage and batch of up to N x N
# neighbouring tiles of one UTM zone, instead of one per tile (see jointseg/batch.py and
# benchmarks/README.md "DAG scale"). Each job runs `jointseg batch STAGE`, which loops
# over the batch's tiles calling the per-tile command with the options after `--`,
# writes the per-tile files at their usual paths (docs/architecture.md), skips tiles
# whose files exist and validate (a rerun resumes inside a batch), reports failed tiles
# together at the end and writes, last, the batch manifest that is the rule's output.


rule search_scenes:
    input:
        demo_catalogue,
    output:
        manifest=batch_manifest("search"),
    log:
        "logs/{region}/{year}/search/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/search/{batch}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=batch_runtime(0.5),
        network=1,
    params:
        tiles=tiles_of_batch,
        configfile=CONFIGFILE,
        api_url=lambda w: (
            ""
            if DEMO["enabled"]
            else f"--api-url {shlex.quote(config['stac']['api_url'])}"
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
        batch_cmd("search") + " -- --config {params.configfile:q} {params.api_url}"
        " --collection {params.collection:q} --provider {params.provider:q}"
        " --start {params.start:q} --end {params.end:q}"
        " --max-cloud-cover {params.max_cloud} --max-scenes {params.max_scenes}"
        " --tile-size-m {params.tile_size_m} {params.sign} {params.http}"
        " --timeout-s {params.timeout_s} > {log} 2>&1"


rule download:
    input:
        scenes=batch_manifest("search"),
    output:
        manifest=batch_manifest("download"),
    log:
        "logs/{region}/{year}/download/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/download/{batch}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=batch_runtime(5),
        network=1,
    params:
        tiles=tiles_of_batch,
        tile_size_m=TILE_SIZE_M,
        bands=",".join(config["bands"]["b10m"] + config["bands"]["b20m"] + ["SCL"]),
        retries=config["download"]["retries"],
        backoff_s=config["download"]["backoff_s"],
        timeout_s=config["stac"]["timeout_s"],
        http="--allow-http" if config["stac"]["allow_http"] else "",
    shell:
        batch_cmd("download") + " -- --tile-size-m {params.tile_size_m}"
        " --bands {params.bands:q} --retries {params.retries}"
        " --backoff-s {params.backoff_s} --timeout-s {params.timeout_s} {params.http}"
        " > {log} 2>&1"


rule cloudmask:
    input:
        stack=batch_manifest("download"),
    output:
        manifest=batch_manifest("cloudmask"),
    log:
        "logs/{region}/{year}/cloudmask/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/cloudmask/{batch}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=batch_runtime(2),
    params:
        tiles=tiles_of_batch,
        classes=",".join(str(c) for c in config["cloudmask"]["scl_masked_classes"]),
        dilation_m=config["cloudmask"]["dilation_m"],
        combine=config["cloudmask"]["combine"],
        s2c=config["cloudmask"]["s2cloudless"],
    shell:
        batch_cmd("cloudmask") + " -- --scl-classes {params.classes:q}"
        " --dilation-m {params.dilation_m} --combine {params.combine:q}"
        " --s2c-threshold {params.s2c[threshold]}"
        " --s2c-average-over {params.s2c[average_over]}"
        " --s2c-dilation-size {params.s2c[dilation_size]} > {log} 2>&1"


rule composite:
    input:
        stack=batch_manifest("download"),
        mask=batch_manifest("cloudmask"),
    output:
        manifest=batch_manifest("composite"),
    log:
        "logs/{region}/{year}/composite/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/composite/{batch}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=batch_runtime(2),
    params:
        tiles=tiles_of_batch,
        method=config["composite"]["method"],
        min_clear=config["composite"]["min_clear"],
        block_rows=config["composite"]["block_rows"],
    shell:
        batch_cmd("composite") + " -- --method {params.method:q}"
        " --min-clear {params.min_clear} --block-rows {params.block_rows} > {log} 2>&1"


rule predict:
    input:
        composite=batch_manifest("composite"),
        model=model_onnx,
    output:
        manifest=batch_manifest("predict"),
    log:
        "logs/{region}/{year}/predict/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict/{batch}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: config["infer"]["threads"]
    resources:
        mem_mb=6000,
        runtime=batch_runtime(1),
        gpu=1,
    params:
        tiles=tiles_of_batch,
        i=config["infer"],
        providers=",".join(config["infer"]["providers"]),
        cuda=" ".join(
            f"--cuda-option {shlex.quote(f'{k}={v}')}"
            for k, v in config["infer"]["cuda"].items()
            if v
        ),
        sr="--sr-quicklook" if config["infer"]["sr_quicklook"] else "",
        stage="predict",
    shell:
        batch_cmd("{params.stage}")
        + " {params.sr} -- --model {input.model:q} --threads {threads}"
        " --batch-size {params.i[batch_size]} --window {params.i[window_10m]}"
        " --overlap {params.i[overlap_10m]} --threshold {params.i[threshold]}"
        " --providers {params.providers:q} {params.cuda} > {log} 2>&1"


use rule predict as predict_baseline with:
    input:
        composite=batch_manifest("composite"),
        model=f"models/{BASELINE_NAME}.onnx",
    output:
        manifest=batch_manifest("predict_baseline"),
    log:
        "logs/{region}/{year}/predict_baseline/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict_baseline/{batch}.tsv"
    params:
        tiles=tiles_of_batch,
        i=config["infer"],
        providers=",".join(config["infer"]["providers"]),
        cuda=" ".join(
            f"--cuda-option {shlex.quote(f'{k}={v}')}"
            for k, v in config["infer"]["cuda"].items()
            if v
        ),
        sr="--sr-quicklook" if config["infer"]["sr_quicklook"] else "",
        stage="predict_baseline",


localrules:
    merge_predict_batches,
    merge_predict_baseline_batches,


# One region manifest merging the predict batch manifests: the mosaic's input, so the
# mosaic command stays short for any number of batches (a run: block, not a shell).
rule merge_predict_batches:
    input:
        lambda w: batch_manifests(w, "predict"),
    output:
        f"{RESULTS}/{{region}}/{{year}}/isa/batches.json",
    log:
        "logs/{region}/{year}/predict/merge.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict/merge.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        stage="predict",
    run:
        merge_batch_manifests(input, output[0], params.stage, wildcards, log[0])


use rule merge_predict_batches as merge_predict_baseline_batches with:
    input:
        lambda w: batch_manifests(w, "predict_baseline"),
    output:
        f"{RESULTS}/{{region}}/{{year}}/baseline/isa/batches.json",
    log:
        "logs/{region}/{year}/predict_baseline/merge.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict_baseline/merge.tsv"
    params:
        stage="predict_baseline",
