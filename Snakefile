from snakemake.utils import min_version

min_version("9.0")


# the embedded default, unless --configfile names the config: a preset (presets/*.yaml) is a
# whole config, since an overlay cannot remove the default's classifiers and denoisers; to
# overlay the default instead, name it first: --configfile config.yaml mine.yaml
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/classifiers.smk"
include: "workflow/rules/denoisers.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/accuracy.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/blur.smk"
include: "workflow/rules/iterations.smk"
include: "workflow/rules/adaptive.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/purification.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),


# after every rule is defined
check_resource_overrides()
check_batch_sizes()
check_benchmarks()
