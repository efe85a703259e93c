from dds.pipeline.blur import blur
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i = snakemake.params, snakemake.input
noise = float(getattr(snakemake.wildcards, "noise", 0.0))
blur(p.spec["kernel_size"], p.spec["sigma"], noise, p.seed, p.batch_size, p.device, i.images, i.classifier,
            snakemake.output[0], inference=p.inference)
