from dds.layout import per_key
from dds.pipeline.adaptive import adaptive
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
# the unaware shards come epsilon by epsilon
unaware = per_key(i.unaware, [float(e) for e in p.epsilons])
adaptive(p.spec, {**p.adaptive, "num_images": p.images}, w.attack, w.classifier, w.denoiser, float(w.sigma),
                p.seed, p.batch_size, p.device, i.eval, unaware, i.classifier, i.denoiser, snakemake.output[0])
