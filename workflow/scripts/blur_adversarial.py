from dds.pipeline.blur import blur_adversarial
from dds.runtime import run_stage

run_stage(blur_adversarial, snakemake)
