from dds.pipeline.sample import sample
from dds.runtime import run_stage

run_stage(sample, snakemake)
