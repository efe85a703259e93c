from dds.pipeline.report import report
from dds.runtime import run_stage

run_stage(report, snakemake)
