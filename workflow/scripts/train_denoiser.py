from dds.pipeline.denoisers import train_denoiser
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
train_denoiser(snakemake.wildcards.denoiser, snakemake.params.spec, snakemake.params.seed,
                      snakemake.params.device, snakemake.input.train, snakemake.output.weights,
                      snakemake.output.metrics)
