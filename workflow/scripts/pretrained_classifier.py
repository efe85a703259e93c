from dds.pipeline.classifiers import pretrained_classifier
from dds.runtime import run_stage

run_stage(pretrained_classifier, snakemake)
