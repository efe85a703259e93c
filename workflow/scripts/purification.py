from dds.jobs import run_job

run_job("purification", "purification", snakemake)
