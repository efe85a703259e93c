from dds.pipeline.adaptive import adaptive_table
from dds.runtime import run_stage

run_stage(adaptive_table, snakemake)
