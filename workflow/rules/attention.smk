rule attention:
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
    threads: job_threads("attention")
    resources:
        **job_resources("attention", mem_mb=2000, runtime=60, gpu=True),
    params:
        spec={**ATTENTION, "num_images": ATTENTION_IMAGES},
        epsilons=["0.0", *ATTENTION_EPSILONS],
        sigmas=ATTENTION_SIGMAS,
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/attention.py"


rule attention_table:
    input:
        all_outputs(layout.ATTENTION, attacks=section_attack("attention")),
    output:
        layout.ATTENTION_TABLE,
    log:
        layout.log(layout.ATTENTION_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("attention_table")
    resources:
        **job_resources("attention_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/attention_table.py"
