from dds.pipeline.denoisers import openai_denoiser
from dds.runtime import run_stage

run_stage(openai_denoiser, snakemake)
