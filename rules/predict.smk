# 1 m ISA per tile with ONNX Runtime (TensorRT/CUDA when available, else CPU),
# tiled with a halo and blended so tiling leaves no seam. With infer.sr_quicklook
# the SR RGB quicklook {tile}_sr.tif is a declared output too.


rule predict:
    input:
        c10=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_10m.tif",
        c20=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_20m.tif",
        model=model_onnx,
        twin=fp16_twin(model_onnx),
    output:
        **predict_outputs(),
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
        settings=stage_settings("predict"),
    shell:
        "jointseg -v predict --model {input.model:q} --input {input.c10:q}"
        " --output {output.isa:q} --prob-output {output.prob:q}"
        + (" --sr-output {output.sr:q}" if SR_QUICKLOOK else "")
        + " {params.settings} --threads {threads} --no-progress > {log:q} 2>&1"


use rule predict as predict_baseline with:
    input:
        c10=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_10m.tif",
        c20=f"{RESULTS}/{{region}}/{{year}}/composite/{{tile}}_20m.tif",
        model=BASELINE_ONNX,
        twin=fp16_twin(BASELINE_ONNX),
    output:
        **predict_outputs("baseline/"),
    log:
        "logs/{region}/{year}/predict_baseline/{tile}.log",
    benchmark:
        "benchmarks/out/{region}/{year}/predict_baseline/{tile}.tsv"
