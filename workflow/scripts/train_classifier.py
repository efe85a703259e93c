from dds.pipeline.classifiers import train_classifier
from dds.runtime import run_stage

run_stage(train_classifier, snakemake)
