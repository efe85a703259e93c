from dds.jobs import run_job

run_job("certify", "certified_table", snakemake)
