from dds.pipeline.accuracy import examples
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i = snakemake.params, snakemake.input
examples(p.n_images, float(p.epsilon), p.sigmas, i.clean, i.adversarial, list(i.denoised), snakemake.output[0])
