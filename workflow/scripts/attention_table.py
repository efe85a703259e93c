from dds import aggregate
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
aggregate.attention_summary(list(snakemake.input), snakemake.output[0])
