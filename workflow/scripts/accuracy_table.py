from dds.pipeline.accuracy import accuracy_table
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
w, out, grid = snakemake.wildcards, snakemake.output, snakemake.params.grid
accuracy_table(w.dataset, w.classifier, w.attack, w.denoiser, grid["epsilons"], grid["sigmas"],
                         grid["shards"], out.table, out.tex, out.png, out.svg)
