from dds.pipeline.denoise import denoise_and_classify
from dds.runtime import run_stage

run_stage(denoise_and_classify, snakemake)
