from dds.jobs import run_job

run_job("classifiers", "pretrained_classifier", snakemake)
