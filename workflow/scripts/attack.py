from dds.jobs import run_job

run_job("attack", "attack", snakemake)
