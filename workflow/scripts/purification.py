from dds.pipeline.purification import purification
from dds.runtime import run_stage

run_stage(purification, snakemake)
