# JointSeg training and ONNX export, into <results_dir>/models/<name>-<model id>/ (the
# id keys the training data and the model.train settings: jointseg.identity). Training
# chips (rules/common.smk chip_source): cut by make_chips from the training region (training_data, rules/chips.smk), the user's
# own chips (model.chips.dir), or simulated training regions whose seeds differ from the
# demo region's, so the demo map is out-of-sample. With model.onnx set none of this runs.


rule simulate_chips:
    output:
        index=f"{SIM_CHIPS_DIR}/index.csv",
        provenance=f"{SIM_CHIPS_DIR}/provenance.json",
    log:
        "logs/simulate_chips.log",
    benchmark:
        "benchmarks/out/simulate_chips.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        out=lambda w, output: str(Path(output.index).parent),
        chips=config["model"]["chips"],
        # a fixed year (not the mapped one): changing `year` must not retrain
        year=TRAIN_YEAR or 2021,
        training_id=TRAINING_ID,
    shell:
        "jointseg -v simulate chips --out {params.out:q} --seed {params.chips[seed]:q}"
        " --n-regions {params.chips[n_regions]:q}"
        " --region-size-m {params.chips[region_size_m]:q}"
        " --chip-size-m {params.chips[chip_size_m]:q} --year {params.year}"
        " --label-noise {params.chips[label_noise]:q}"
        " --training-data-id {params.training_id:q} > {log:q} 2>&1"


rule train_model:
    input:
        chips=chips_index,
    output:
        best=f"{MODEL_DIR}/best.pt",
        history=f"{MODEL_DIR}/history.csv",
        plot=f"{MODEL_DIR}/loss.png",
    log:
        f"logs/train_model/{Path(MODEL_DIR).name}.log",
    benchmark:
        f"benchmarks/out/train_model/{Path(MODEL_DIR).name}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        # model.train.gpus > 1: `jointseg train` relaunches itself under torchrun (DDP)
        gpu=config["model"]["train"].get("gpus", 1),
    params:
        out=lambda w, output: str(Path(output.best).parent),
        chips=lambda w, input: str(Path(input.chips).parent),
        train=json.dumps(config["model"]["train"]),
    shell:
        "jointseg -v train --chips {params.chips:q} --out {params.out:q}"
        " --train-json {params.train:q}"
        " --threads {threads}"
        " --resume --no-progress > {log:q} 2>&1"


rule export_onnx:
    input:
        best=f"{MODEL_DIR}/best.pt",
    output:
        fp32=f"{MODEL_DIR}.onnx",
        fp16=f"{MODEL_DIR}_fp16.onnx",
    log:
        f"logs/export_onnx/{Path(MODEL_DIR).name}.log",
    benchmark:
        f"benchmarks/out/export_onnx/{Path(MODEL_DIR).name}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        name=MODEL_NAME,
    shell:
        "jointseg -v export --checkpoint {input.best:q} --out {output.fp32:q}"
        " --name {params.name:q} --threads {threads} > {log:q} 2>&1"


# The bilinear-upsampling baseline (same segmentation network, no SR branch),
# trained on the same chips with the same budget: the paper's +9.5 F1 comparison.
# Only in the DAG with model.baseline (accuracy_inputs asks for its mosaic).
use rule train_model as train_baseline with:
    output:
        best=f"{BASELINE_DIR}/best.pt",
        history=f"{BASELINE_DIR}/history.csv",
        plot=f"{BASELINE_DIR}/loss.png",
    log:
        f"logs/train_model/{Path(BASELINE_DIR).name}.log",
    benchmark:
        f"benchmarks/out/train_model/{Path(BASELINE_DIR).name}.tsv"
    params:
        out=lambda w, output: str(Path(output.best).parent),
        chips=lambda w, input: str(Path(input.chips).parent),
        train=json.dumps({**config["model"]["train"], "arch": "bilinear"}),


use rule export_onnx as export_baseline with:
    input:
        best=f"{BASELINE_DIR}/best.pt",
    output:
        fp32=f"{BASELINE_DIR}.onnx",
        fp16=f"{BASELINE_DIR}_fp16.onnx",
    log:
        f"logs/export_onnx/{Path(BASELINE_DIR).name}.log",
    benchmark:
        f"benchmarks/out/export_onnx/{Path(BASELINE_DIR).name}.tsv"
    params:
        name=BASELINE_NAME,


# Named targets, since the keyed paths are long: `snakemake --configfile my.yaml chips`
# cuts (or simulates) the training chips only, `... model` trains and exports the model.
rule chips:
    input:
        chips_index,
    localrule: True


rule model:
    input:
        f"{MODEL_DIR}.onnx",
    localrule: True
