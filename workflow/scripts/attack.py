from dds.pipeline.attack import attack
from dds.runtime import run_stage

run_stage(attack, snakemake)
