from dds.pipeline.attention import attention_table
from dds.runtime import run_stage

run_stage(attention_table, snakemake)
