# Paired training chips from the training region (config training_data): its HR
# imagery and label sources against its Sentinel-2 composite tiles, which the usual
# search -> download -> cloudmask -> composite rules make (region name "training").
# See docs/training-data.md.


rule make_chips:
    input:
        unpack(make_chips_inputs),
    output:
        index=f"{MAKE_CHIPS_DIR}/index.csv",
        qa=f"{MAKE_CHIPS_DIR}/qa.json",
        plot=f"{MAKE_CHIPS_DIR}/qa.png",
        provenance=f"{MAKE_CHIPS_DIR}/provenance.json",
    log:
        f"logs/make_chips/{TRAIN_REGION}-{TRAIN_YEAR}-{TRAINING_ID}.log",
    benchmark:
        f"benchmarks/out/make_chips/{TRAIN_REGION}-{TRAIN_YEAR}-{TRAINING_ID}.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        out=lambda w, output: str(Path(output.index).parent),
        options=lambda w: chips_options(),
        training_id=TRAINING_ID,
    shell:
        "jointseg -v chips {params.options} --out {params.out:q}"
        " --training-data-id {params.training_id:q} --no-progress > {log:q} 2>&1"
