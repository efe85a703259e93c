from dds.jobs import run_job

run_job("accuracy", "accuracy_table", snakemake)
