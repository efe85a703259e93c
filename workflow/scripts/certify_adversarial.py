from dds.jobs import run_job

run_job("certify", "certify_adversarial", snakemake)
