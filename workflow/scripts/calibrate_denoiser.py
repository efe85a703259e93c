from dds.pipeline.denoisers import calibrate_denoiser
from dds.runtime import run_stage

run_stage(calibrate_denoiser, snakemake)
