from dds.jobs import run_job

run_job("classifiers", "train_classifier", snakemake)
