from dds import aggregate
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
aggregate.adaptive_summary(snakemake.wildcards.dataset, list(snakemake.input), o.table, o.tex, o.png, o.svg)
