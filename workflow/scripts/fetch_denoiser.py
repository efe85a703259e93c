from dds.jobs import run_job

run_job("denoisers", "fetch_denoiser", snakemake)
