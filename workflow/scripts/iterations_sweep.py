from dds.pipeline.iterations import iterations_sweep
from dds.runtime import run_stage

run_stage(iterations_sweep, snakemake)
