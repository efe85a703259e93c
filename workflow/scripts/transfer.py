from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
# inputs come epsilon by epsilon (denoised: sigma, then epsilon), `p.shards` files each
eps, sigmas, n = [float(e) for e in p.epsilons], [float(s) for s in p.sigmas], p.shards
adversarial = {e: list(i.adversarial[k * n : (k + 1) * n]) for k, e in enumerate(eps)}
pairs = [(s, e) for s in sigmas for e in eps]
denoised = {pair: list(i.denoised[k * n : (k + 1) * n]) for k, pair in enumerate(pairs)}
stages.transfer(w.attack, w.classifier, w.denoiser, eps, sigmas, p.batch_size, p.device, adversarial, denoised,
                dict(zip(p.classifiers, i.classifiers)), snakemake.output[0], inference=p.inference)
