from dds.pipeline.report import html_report
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
stages = {stage: list(snakemake.input[stage]) for stage in snakemake.params.stages}
html_report(snakemake.params.config, snakemake.input.summary, stages, snakemake.output[0])
