from dds.pipeline.denoisers import openai_denoiser
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
openai_denoiser(snakemake.wildcards.denoiser, snakemake.params.spec, snakemake.input[0],
                       snakemake.output.weights, snakemake.output.metrics)
