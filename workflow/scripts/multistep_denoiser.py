from dds.pipeline.denoisers import multistep_denoiser
from dds.runtime import run_stage

run_stage(multistep_denoiser, snakemake)
