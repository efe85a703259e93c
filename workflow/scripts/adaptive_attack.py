from dds.jobs import run_job

run_job("adaptive", "adaptive_attack", snakemake)
