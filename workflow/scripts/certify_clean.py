from dds.pipeline.certify import certify_clean
from dds.runtime import run_stage

run_stage(certify_clean, snakemake)
