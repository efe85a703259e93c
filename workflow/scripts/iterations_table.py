from dds import aggregate
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
aggregate.iterations_summary(list(snakemake.input), o.table, o.png, o.svg)
