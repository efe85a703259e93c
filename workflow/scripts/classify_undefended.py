from dds.pipeline.classify import classify_undefended
from dds.runtime import run_stage

run_stage(classify_undefended, snakemake)
