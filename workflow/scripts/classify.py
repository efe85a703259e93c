from dds.pipeline.classify import predict
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
predict(snakemake.params.batch_size, snakemake.params.device, snakemake.input.images,
               snakemake.input.classifier, snakemake.output[0], inference=snakemake.params.inference)
