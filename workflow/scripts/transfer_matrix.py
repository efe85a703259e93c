from dds.pipeline.transfer import transfer_matrix
from dds.runtime import run_stage

run_stage(transfer_matrix, snakemake)
