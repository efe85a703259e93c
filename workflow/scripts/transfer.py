from dds.layout import per_key
from dds.pipeline.transfer import transfer
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
# inputs come epsilon by epsilon (denoised: sigma, then epsilon)
eps, sigmas = [float(e) for e in p.epsilons], [float(s) for s in p.sigmas]
adversarial = per_key(i.adversarial, eps)
denoised = per_key(i.denoised, [(s, e) for s in sigmas for e in eps])
transfer(w.attack, w.classifier, w.denoiser, eps, sigmas, p.batch_size, p.device, adversarial, denoised,
                dict(zip(p.classifiers, i.classifiers)), snakemake.output[0], inference=p.inference)
