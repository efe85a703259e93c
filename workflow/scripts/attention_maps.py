from dds.pipeline.attention import attention_maps
from dds.runtime import run_stage

run_stage(attention_maps, snakemake)
