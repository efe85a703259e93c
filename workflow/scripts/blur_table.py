from dds.pipeline.blur import blur_table
from dds.runtime import run_stage

run_stage(blur_table, snakemake)
