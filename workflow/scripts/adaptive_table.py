from dds.pipeline.adaptive import adaptive_summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
adaptive_summary(snakemake.wildcards.dataset, list(snakemake.input), o.table, o.tex, o.png, o.svg)
