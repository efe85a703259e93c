from dds.pipeline.purification import purification_table
from dds.runtime import run_stage

run_stage(purification_table, snakemake)
