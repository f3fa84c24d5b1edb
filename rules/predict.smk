# 1 m ISA per tile with ONNX Runtime (TensorRT/CUDA when available, else CPU),
# tiled with a halo and blended so tiling leaves no seam.


rule predict:
    input:
        c10=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_10m.tif",
        c20=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_20m.tif",
        model=model_onnx,
    output:
        isa=f"{RESULTS}/{{region}}/{{year}}/isa/{{tile}}_isa.tif",
        prob=f"{RESULTS}/{{region}}/{{year}}/isa/{{tile}}_prob.tif",
    log:
        "logs/{region}/{year}/predict/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict/{tile}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: config["infer"]["threads"]
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=1,
    params:
        i=config["infer"],
        providers=",".join(config["infer"]["providers"]),
        cuda=" ".join(
            f"--cuda-option {shlex.quote(f'{k}={v}')}"
            for k, v in config["infer"]["cuda"].items()
            if v
        ),
        sr=lambda w, output: (
            f"--sr-output {output.isa[:-8]}_sr.tif"
            if config["infer"]["sr_quicklook"]
            else ""
        ),
    shell:
        "jointseg -v predict --model {input.model} --input {input.c10}"
        " --output {output.isa} --prob-output {output.prob} {params.sr}"
        " --threads {threads} --batch-size {params.i[batch_size]}"
        " --window {params.i[window_10m]} --overlap {params.i[overlap_10m]}"
        " --threshold {params.i[threshold]} --providers {params.providers:q}"
        " {params.cuda} --no-progress > {log} 2>&1"


use rule predict as predict_baseline with:
    input:
        c10=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_10m.tif",
        c20=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_20m.tif",
        model=f"models/{BASELINE_NAME}.onnx",
    output:
        isa=f"{RESULTS}/{{region}}/{{year}}/baseline/isa/{{tile}}_isa.tif",
        prob=f"{RESULTS}/{{region}}/{{year}}/baseline/isa/{{tile}}_prob.tif",
    log:
        "logs/{region}/{year}/predict_baseline/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict_baseline/{tile}.tsv"
