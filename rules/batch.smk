# Batch mode (grid.batch_block resolved to N > 0): one job per stage and batch of up to
# N x N neighbouring tiles of one UTM zone, instead of one per tile (see jointseg/batch.py and
# benchmarks/README.md "DAG scale"). Each job runs `jointseg batch STAGE`, which builds
# the stage's settings once from the same `--settings` word as the per-tile rule's
# (rules/common.smk: stage_settings), loops over the batch's tiles calling the stage's one
# function, writes the per-tile files at their usual paths (docs/architecture.md), skips
# tiles whose files validate and were made by the same settings, inputs and code (a rerun
# after a crash resumes inside a batch; after a change the tiles are redone: their
# fingerprints are in <manifest>.tiles.json), reports failed tiles together at the end and
# writes, last, the batch manifest that is the rule's output.


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
        settings=stage_settings("search"),
    shell:
        batch_cmd("search") + " {params.settings} > {log:q} 2>&1"


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
        settings=stage_settings("download"),
    shell:
        batch_cmd("download") + " {params.settings} > {log:q} 2>&1"


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
        settings=stage_settings("cloudmask"),
    shell:
        batch_cmd("cloudmask") + " {params.settings} > {log:q} 2>&1"


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
        settings=stage_settings("composite"),
    shell:
        batch_cmd("composite") + " {params.settings} > {log:q} 2>&1"


# With infer.sr_quicklook each tile's {tile}_sr.tif is written beside its _isa.tif and
# listed (key "sr") in the batch manifest, the rule's declared output.
rule predict:
    input:
        composite=batch_manifest("composite"),
        model=model_onnx,
        twin=fp16_twin(model_onnx),
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
        stage="predict",
        settings=stage_settings("predict"),
    shell:
        batch_cmd("{params.stage}")
        + " --model {input.model:q} {params.settings} -- --threads {threads}"
        " > {log:q} 2>&1"


use rule predict as predict_baseline with:
    input:
        composite=batch_manifest("composite"),
        model=BASELINE_ONNX,
        twin=fp16_twin(BASELINE_ONNX),
    output:
        manifest=batch_manifest("predict_baseline"),
    log:
        "logs/{region}/{year}/predict_baseline/{batch}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict_baseline/{batch}.tsv"
    params:
        tiles=tiles_of_batch,
        stage="predict_baseline",
        settings=stage_settings("predict_baseline"),


localrules:
    merge_predict_batches,
    merge_predict_baseline_batches,


# One region manifest merging the predict batch manifests: the mosaic's input, so the
# mosaic command stays short for any number of batches (`jointseg merge-batches` takes
# batch ids, not paths, for the same reason).
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
        batches=batch_ids,
        folder=lambda w, input: str(Path(input[0]).parent),
    shell:
        "jointseg -v merge-batches {params.stage} --region {wildcards.region}"
        " --year {wildcards.year} --dir {params.folder:q} --batches {params.batches}"
        " --out {output:q} > {log:q} 2>&1"


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
        batches=batch_ids,
        folder=lambda w, input: str(Path(input[0]).parent),
