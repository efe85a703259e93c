from dds.pipeline.denoisers import fetch_checkpoint
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
fetch_checkpoint(snakemake.params.url, snakemake.params.sha256, snakemake.output[0])
