from dds.layout import per_key
from dds.pipeline.attention import attention
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
p, i, o = snakemake.params, snakemake.input, snakemake.output
# inputs come epsilon by epsilon (denoised: sigma, then epsilon)
eps, sigmas = [float(e) for e in p.epsilons], [float(s) for s in p.sigmas]
adversarial = per_key(i.adversarial, eps)
denoised = per_key(i.denoised, [(s, e) for s in sigmas for e in eps])
attention(snakemake.wildcards.classifier, p.spec, p.batch_size, p.device, i.classifier, adversarial, denoised,
                 o.table, o.png)
