from dds.pipeline.attack import attack
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
w, p = snakemake.wildcards, snakemake.params
attack(p.spec, w.attack, w.classifier, float(w.epsilon), int(w.shard), p.shard_size, p.seed,
              p.batch_size, p.device, snakemake.input.eval, snakemake.input.classifier, snakemake.output[0])
