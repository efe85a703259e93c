rule attention_maps:
    input:
        unpack(get_attention_inputs),
    output:
        table=layout.ATTENTION,
        png=report(
            layout.ATTENTION_PNG,
            caption="../report/attention.rst",
            category="Attention",
        ),
    log:
        layout.log(layout.ATTENTION),
    benchmark:
        layout.benchmark(layout.ATTENTION)
    conda:
        TORCH_ENV
    threads: job_threads("attention_maps")
    resources:
        **job_resources("attention_maps", mem_mb=2000, runtime=60, gpu=True),
    params:
        classifier_name=lambda wildcards: wildcards.classifier,
        denoiser_name=lambda wildcards: wildcards.denoiser,
        spec={**ATTENTION, "num_images": ATTENTION_IMAGES},
        batch_size=batch_size("attention_maps"),
        device=config["device"],
    script:
        "../scripts/attention_maps.py"


report_benchmarks(
    "attention_maps",
    layout.ATTENTION,
    enabled=ATTENTION["enabled"],
    attacks=section_attack("attention"),
    denoisers=section_denoisers("attention"),
)


rule attention_table:
    input:
        maps=all_outputs(
            layout.ATTENTION,
            attacks=section_attack("attention"),
            denoisers=section_denoisers("attention"),
        ),
    output:
        table=layout.ATTENTION_TABLE,
    log:
        layout.log(layout.ATTENTION_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("attention_table")
    resources:
        **job_resources("attention_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/attention_table.py"
