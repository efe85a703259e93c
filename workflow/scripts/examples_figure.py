from dds.jobs import run_job

run_job("accuracy", "examples_figure", snakemake)
