# Other ISA products (GAIA, GISA-10m, WSF 2019, ESRI LC, Dynamic World, GHS-BUILT-S)
# against the same reference as the map, on the same pixels: Table 1 of the paper.
# Products come from config accuracy.products (their published formats); with the demo
# on and none configured, from SIMULATED stand-ins in those formats (simulate_products).
rule simulate_products:
    input:
        truths=lambda w: [demo_truth(y) for y in YEARS],
    output:
        product_stand_ins(),
    log:
        "logs/simulate_products.log",
    benchmark:
        "benchmarks/out/simulate_products.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        truths=lambda w, input: " ".join(
            f"--truth {shlex.quote(f'{y}={p}')}" for y, p in zip(YEARS, input.truths)
        ),
        out=lambda w, output: str(Path(output[0]).parents[1]),
        seed=config["demo"]["seed"],
    shell:
        "jointseg -v products simulate {params.truths} --out {params.out:q}"
        " --seed {params.seed:q} > {log:q} 2>&1"


rule assess_products:
    input:
        unpack(products_inputs),
    output:
        f"{RESULTS}/{{region}}/{{year}}/accuracy/products.json",
    log:
        "logs/{region}/{year}/products.log",
    benchmark:
        "benchmarks/out/{region}/{year}/products.tsv"
    conda:
        "../envs/gdal.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        args=products_args,
        threshold=config["accuracy"]["threshold"],
    shell:
        "jointseg -v products assess --map {input.map:q} --year {wildcards.year}"
        " --region {wildcards.region} {params.args} --threshold {params.threshold:q}"
        " --out {output:q} > {log:q} 2>&1"
