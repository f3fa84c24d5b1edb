# The SIMULATED demo region in every year of demo.years, side by side: one landscape
# that grows between the years, per year its 1 m truth (SIM_DIR/<year>/truth/) and its
# Sentinel-2 L2A-like scenes, WorldCover 2020 and 2021, named districts and ONE STAC
# catalogue of all the scenes (see docs/simulation.md). The mapped years (year / years)
# pick among them, so changing them never re-simulates. With training_data.simulated,
# also a training region apart from it (in training_data.year): its scenes join the
# catalogue and its HR image and noisy map labels are written as sources, which
# make_chips (rules/chips.smk) reads like a user's.


rule simulate_demo:
    output:
        simulate_demo_outputs(),
    log:
        "logs/simulate_demo.log",
    benchmark:
        "benchmarks/out/simulate_demo.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        bbox=lambda w: region_bbox_arg(config["demo"]["region"]),
        crs=lambda w: config["regions"][config["demo"]["region"]].get(
            "bbox_crs", "EPSG:4326"
        ),
        years=" ".join(f"--year {int(y)}" for y in SIM_YEARS),
        seed=config["demo"]["seed"],
        n_dates=config["demo"]["n_dates"],
        base_url=f"http://127.0.0.1:{DEMO['file_port']}",
        out=lambda w, output: str(Path(output[0]).parent),
        training=simulate_training_args,
    shell:
        "jointseg -v simulate region --out {params.out:q} --seed {params.seed:q}"
        " {params.years} --bbox {params.bbox} --crs {params.crs:q}"
        " --n-dates {params.n_dates:q} --file-base-url {params.base_url:q}"
        " --workers {threads} {params.training} > {log:q} 2>&1"
