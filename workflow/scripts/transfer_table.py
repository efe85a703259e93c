from dds.jobs import run_job

run_job("transfer", "transfer_table", snakemake)
