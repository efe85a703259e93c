from dds.pipeline.certify import certify_adversarial
from dds.runtime import run_stage

run_stage(certify_adversarial, snakemake)
