from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
# the unaware shards come epsilon by epsilon, the same number of shards each
per_eps = len(i.unaware) // len(p.epsilons)
unaware = {float(e): list(i.unaware[k * per_eps : (k + 1) * per_eps]) for k, e in enumerate(p.epsilons)}
stages.adaptive(p.spec, {**p.adaptive, "num_images": p.images}, w.attack, w.classifier, w.denoiser, float(w.sigma),
                p.seed, p.batch_size, p.device, i.eval, unaware, i.classifier, i.denoiser, snakemake.output[0])
