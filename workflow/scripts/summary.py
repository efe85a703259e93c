from dds.pipeline.accuracy import summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
summary(list(snakemake.input), snakemake.output.table, snakemake.output.png, snakemake.output.svg)
