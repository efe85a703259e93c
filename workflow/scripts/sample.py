from dds import stages
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
spec = snakemake.params.dataset
stages.sample(spec["name"], spec["image_size"], spec["eval_size"], snakemake.params.seed,
              snakemake.output.train, snakemake.output.eval, snakemake.output.manifest)
