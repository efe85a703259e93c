from dds.jobs import run_job

run_job("denoisers", "multistep_denoiser", snakemake)
