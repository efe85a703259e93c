from dds.jobs import run_job

run_job("report", "report", snakemake)
