from dds.pipeline.certify import certify
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i = snakemake.params, snakemake.input
names = list(p.classifiers)
certify(float(snakemake.wildcards.sigma), p.spec, p.seed, p.device, i.images, p.rows, i.denoiser,
               dict(zip(names, i.classifiers)), dict(zip(names, snakemake.output)), inference=p.inference)
