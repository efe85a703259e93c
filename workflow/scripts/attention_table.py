from dds.jobs import run_job

run_job("attention", "attention_table", snakemake)
