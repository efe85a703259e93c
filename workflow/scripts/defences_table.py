from dds.jobs import run_job

run_job("blur", "defences_table", snakemake)
