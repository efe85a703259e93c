from dds.jobs import run_job

run_job("blur", "blur_adversarial", snakemake)
