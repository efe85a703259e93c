from dds.jobs import run_job

run_job("sample", "sample", snakemake)
