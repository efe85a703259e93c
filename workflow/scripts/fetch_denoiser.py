from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
stages.fetch_checkpoint(snakemake.params.url, snakemake.params.sha256, snakemake.output[0])
