from dds import aggregate
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
aggregate.defences(list(snakemake.input.accuracy), list(snakemake.input.blur), o.table, o.png, o.svg)
