from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
stages.predict(snakemake.params.batch_size, snakemake.params.device, snakemake.input.images,
               snakemake.input.classifier, snakemake.output[0], inference=snakemake.params.inference)
