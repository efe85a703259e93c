from dds.pipeline.iterations import iterations
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
iterations(p.spec, w.attack, w.classifier, w.denoiser, float(p.sweep["epsilon"]), p.sweep["steps"], p.sweep["num_images"],
                  p.sigmas, p.seed, p.batch_size, p.device, i.eval, i.classifier, i.denoiser, snakemake.output[0])
