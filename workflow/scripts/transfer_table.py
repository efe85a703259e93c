from dds.pipeline.transfer import transfer_summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
transfer_summary(list(snakemake.input), o.table, o.png, o.svg)
