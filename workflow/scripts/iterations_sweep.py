from dds.jobs import run_job

run_job("iterations", "iterations_sweep", snakemake)
