from dds.jobs import run_job

run_job("denoisers", "train_denoiser", snakemake)
