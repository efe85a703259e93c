from dds.pipeline.blur import defences
from dds.runtime import setup_job

setup_job(snakemake.log[0], snakemake.threads)
o = snakemake.output
defences(list(snakemake.input.accuracy), list(snakemake.input.blur), o.table, o.png, o.svg)
