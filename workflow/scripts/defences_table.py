from dds.pipeline.blur import defences_table
from dds.runtime import run_stage

run_stage(defences_table, snakemake)
