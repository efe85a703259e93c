from dds.pipeline.sample import sample
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
sample(snakemake.params.dataset, snakemake.params.seed, snakemake.output.train, snakemake.output.eval,
              snakemake.output.manifest)
