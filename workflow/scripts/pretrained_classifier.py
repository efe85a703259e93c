from dds.pipeline.classifiers import pretrained_classifier
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
pretrained_classifier(snakemake.wildcards.classifier, snakemake.params.spec, snakemake.output.weights,
                             snakemake.output.metrics)
