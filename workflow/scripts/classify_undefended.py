from dds.jobs import run_job

run_job("classify", "classify_undefended", snakemake)
