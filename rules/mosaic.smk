# Per-tile 1 m products -> one COG per region and year (GDAL VRT -> COG driver),
# reprojected to the region's output CRS, with a STAC Item and a quicklook PNG.


rule mosaic:
    input:
        tiles=lambda w: product_tiles(w, "isa"),
    output:
        cog=f"{RESULTS}/{{region}}/{{year}}/isa_1m.tif",
        item=f"{RESULTS}/{{region}}/{{year}}/isa_1m.json",
        png=report(
            f"{RESULTS}/{{region}}/{{year}}/isa_1m.png",
            caption="../report/mosaic_isa.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
    log:
        "logs/{region}/{year}/mosaic/isa.log",
    benchmark:
        "benchmarks/out/{region}/{year}/mosaic/isa.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: config["mosaic"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        crs=output_crs,
        from_manifests="--tiles-from-manifests" if BATCH_BLOCK else "",
    shell:
        "jointseg -v mosaic {params.from_manifests} {input.tiles:q} --output {output.cog:q}"
        " --kind binary --crs {params.crs:q} --year {wildcards.year}"
        " --region {wildcards.region} --item {output.item:q} --quicklook {output.png:q}"
        " --threads {threads} > {log:q} 2>&1"


rule mosaic_prob:
    input:
        tiles=lambda w: product_tiles(w, "prob"),
    output:
        cog=f"{RESULTS}/{{region}}/{{year}}/isa_prob_1m.tif",
        item=f"{RESULTS}/{{region}}/{{year}}/isa_prob_1m.json",
        png=report(
            f"{RESULTS}/{{region}}/{{year}}/isa_prob_1m.png",
            caption="../report/mosaic_prob.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
    log:
        "logs/{region}/{year}/mosaic/prob.log",
    benchmark:
        "benchmarks/out/{region}/{year}/mosaic/prob.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: config["mosaic"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        crs=output_crs,
        from_manifests="--tiles-from-manifests" if BATCH_BLOCK else "",
    shell:
        "jointseg -v mosaic {params.from_manifests} {input.tiles:q} --output {output.cog:q}"
        " --kind prob --crs {params.crs:q} --year {wildcards.year}"
        " --region {wildcards.region} --item {output.item:q} --quicklook {output.png:q}"
        " --threads {threads} > {log:q} 2>&1"


use rule mosaic as mosaic_baseline with:
    input:
        tiles=lambda w: product_tiles(w, "isa", "baseline/"),
    output:
        cog=f"{RESULTS}/{{region}}/{{year}}/baseline/isa_1m.tif",
        item=f"{RESULTS}/{{region}}/{{year}}/baseline/isa_1m.json",
        png=report(
            f"{RESULTS}/{{region}}/{{year}}/baseline/isa_1m.png",
            caption="../report/mosaic_baseline.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
    log:
        "logs/{region}/{year}/mosaic/baseline.log",
    benchmark:
        "benchmarks/out/{region}/{year}/mosaic/baseline.tsv"
