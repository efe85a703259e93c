from dds.jobs import run_job

run_job("denoisers", "calibrate_denoiser", snakemake)
