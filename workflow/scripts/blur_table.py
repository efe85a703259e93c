from dds.pipeline.blur import blur_summary
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
w, p, o = snakemake.wildcards, snakemake.params, snakemake.output
blur_summary(w.dataset, w.classifier, p.noise_levels, p.epsilons, p.shards, o.table, o.tex)
