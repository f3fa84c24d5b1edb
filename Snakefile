# JointSeg / ISA-1 production DAG.
#
#   snakemake --profile profiles/local --configfile config/demo.yaml  # the simulated demo
#   snakemake --profile profiles/local --configfile my.yaml           # your own run
#   snakemake --profile slurm --configfile my.yaml --config year=2019 # a cluster
#
# One tile flows: search -> download -> cloudmask -> composite -> predict -> mosaic
# (per tile, or per batch of tiles when grid.batch_block resolves to N > 0:
# rules/batch.smk; the default `auto` batches regions of more than 500 tiles).
# All logic lives in the `jointseg` package; rules only wire files together.


# config.yaml is the template of a run of your own. A config file given on the command
# line (`--configfile my.yaml`; `make demo` gives config/demo.yaml) REPLACES it: the run
# is exactly what that file says, every key it leaves out takes the schema's default.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"


# BATCH_BLOCK (rules/common.smk): 0 = one job per tile and stage, N > 0 = one job per
# batch of up to N x N tiles.
if BATCH_BLOCK:

    include: "rules/batch.smk"

else:

    include: "rules/stac.smk"
    include: "rules/download.smk"
    include: "rules/cloudmask.smk"
    include: "rules/composite.smk"
    include: "rules/predict.smk"


# training and export only where there is something to train (not with model.onnx)
if TRAINING_ID:

    include: "rules/model.smk"


if TRAINING:

    include: "rules/chips.smk"


include: "rules/mosaic.smk"
include: "rules/accuracy.smk"
include: "rules/products.smk"
include: "rules/report.smk"
include: "rules/viewer.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_targets() + VIEWER_TARGETS,


onstart:
    start_demo_servers_if_ready()


onsuccess:
    stop_demo_servers_if_started()


onerror:
    stop_demo_servers_if_started()
