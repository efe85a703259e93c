from dds.pipeline.accuracy import accuracy_table
from dds.runtime import run_stage

run_stage(accuracy_table, snakemake)
