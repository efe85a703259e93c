from dds.pipeline.denoise import denoise
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, o = snakemake.params, snakemake.input, snakemake.output
denoise(float(snakemake.wildcards.sigma), p.seed, p.batch_size, p.device, i.images, i.denoiser, i.classifier,
               o.images, o.predictions, inference=p.inference)
