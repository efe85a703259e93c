from dds.pipeline.denoisers import fetch_denoiser
from dds.runtime import run_stage

run_stage(fetch_denoiser, snakemake)
