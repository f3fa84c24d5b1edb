# The SIMULATED demo region: 1 m truth, HR image, Sentinel-2 L2A-like scenes,
# WorldCover-format map and a STAC catalogue (see docs/simulation.md). With
# training_data.simulated, also a training region apart from it: its scenes join the
# catalogue and its HR image and noisy map labels are written as sources, which
# make_chips (rules/chips.smk) reads like a user's.


rule simulate_demo:
    output:
        f"{SIM_DIR}/simulation.json",
        f"{SIM_DIR}/truth/isa_1m.tif",
        f"{SIM_DIR}/truth/landcover_1m.tif",
        simulated_training_outputs(),
    log:
        "logs/simulate_demo.log",
    benchmark:
        "benchmarks/out/simulate_demo.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        bbox=lambda w: region_bbox_arg(config["demo"]["region"]),
        crs=lambda w: config["regions"][config["demo"]["region"]].get(
            "bbox_crs", "EPSG:4326"
        ),
        year=YEARS[0],
        seed=config["demo"]["seed"],
        n_dates=config["demo"]["n_dates"],
        base_url=f"http://127.0.0.1:{DEMO['file_port']}",
        out=lambda w, output: str(Path(output[0]).parent),
        training=simulate_training_args,
    shell:
        "jointseg -v simulate region --out {params.out:q} --seed {params.seed:q}"
        " --year {params.year:q} --bbox {params.bbox} --crs {params.crs:q}"
        " --n-dates {params.n_dates:q} --file-base-url {params.base_url:q}"
        " {params.training} > {log:q} 2>&1"
