from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p = snakemake.params
stages.denoise(float(snakemake.wildcards.sigma), p.seed, p.batch_size, p.device, snakemake.input.images,
               snakemake.input.denoiser, snakemake.output[0], inference=p.inference)
