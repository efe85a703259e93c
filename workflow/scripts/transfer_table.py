from dds.pipeline.transfer import transfer_table
from dds.runtime import run_stage

run_stage(transfer_table, snakemake)
