from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
stages.sample(snakemake.params.dataset, snakemake.params.seed, snakemake.output.train, snakemake.output.eval,
              snakemake.output.manifest)
