from dds.pipeline.certify import certified_table
from dds.runtime import run_stage

run_stage(certified_table, snakemake)
