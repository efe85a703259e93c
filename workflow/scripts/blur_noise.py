from dds.pipeline.blur import blur_noise
from dds.runtime import run_stage

run_stage(blur_noise, snakemake)
