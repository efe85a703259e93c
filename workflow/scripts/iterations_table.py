from dds.pipeline.iterations import iterations_table
from dds.runtime import run_stage

run_stage(iterations_table, snakemake)
