from dds.pipeline.classifiers import train_classifier
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
train_classifier(snakemake.wildcards.classifier, snakemake.params.spec, snakemake.params.seed,
                        snakemake.params.device, snakemake.input.train, snakemake.input.eval,
                        snakemake.output.weights, snakemake.output.metrics, snakemake.params.checkpoint)
