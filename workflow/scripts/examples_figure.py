from dds.pipeline.accuracy import examples_figure
from dds.runtime import run_stage

run_stage(examples_figure, snakemake)
