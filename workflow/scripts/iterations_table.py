from dds.pipeline.iterations import iterations_summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
iterations_summary(list(snakemake.input), o.table, o.png, o.svg)
