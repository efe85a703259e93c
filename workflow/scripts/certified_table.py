from dds.pipeline.certify import certified
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
w, p, o = snakemake.wildcards, snakemake.params, snakemake.output
certified(w.dataset, w.classifier, w.denoiser, p.sigmas, p.shards, p.adversarial_sets, p.spec, o.table,
                    o.tex, o.png, o.svg, dict(zip(map(float, p.sigmas), o.tsv)), o.multiscale)
