from dds.pipeline.attention import attention_summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
attention_summary(list(snakemake.input), snakemake.output[0])
