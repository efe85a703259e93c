from dds.pipeline.adaptive import adaptive_attack
from dds.runtime import run_stage

run_stage(adaptive_attack, snakemake)
