from dds.jobs import run_job

run_job("denoise", "denoise_and_classify", snakemake)
