from dds.pipeline.accuracy import accuracy_summary
from dds.runtime import run_stage

run_stage(accuracy_summary, snakemake)
