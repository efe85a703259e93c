from dds.pipeline.denoisers import train_denoiser
from dds.runtime import run_stage

run_stage(train_denoiser, snakemake)
