from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, o = snakemake.params, snakemake.input, snakemake.output
# inputs come epsilon by epsilon (denoised: sigma, then epsilon), `p.shards` files each
eps, sigmas, n = [float(e) for e in p.epsilons], [float(s) for s in p.sigmas], p.shards
adversarial = {e: list(i.adversarial[k * n : (k + 1) * n]) for k, e in enumerate(eps)}
pairs = [(s, e) for s in sigmas for e in eps]
denoised = {pair: list(i.denoised[k * n : (k + 1) * n]) for k, pair in enumerate(pairs)}
stages.attention(snakemake.wildcards.classifier, p.spec, p.batch_size, p.device, i.classifier, adversarial, denoised,
                 o.table, o.png)
