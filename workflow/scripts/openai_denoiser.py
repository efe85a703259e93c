from dds.jobs import run_job

run_job("denoisers", "openai_denoiser", snakemake)
