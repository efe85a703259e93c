rule transfer_matrix:
    input:
        unpack(get_transfer_inputs),
    output:
        accuracy=layout.TRANSFER,
    log:
        layout.log(layout.TRANSFER),
    benchmark:
        layout.benchmark(layout.TRANSFER)
    conda:
        TORCH_ENV
    threads: job_threads("transfer_matrix")
    resources:
        **job_resources("transfer_matrix", mem_mb=2000, runtime=60, gpu=True),
    params:
        source=lambda wildcards: wildcards.classifier,
        attack_name=lambda wildcards: wildcards.attack,
        denoiser_name=lambda wildcards: wildcards.denoiser,
        batch_size=batch_size("transfer_matrix"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/transfer_matrix.py"


report_benchmarks(
    "transfer_matrix",
    layout.TRANSFER,
    enabled=TRANSFER["enabled"],
    denoisers=section_denoisers("transfer"),
)


rule transfer_table:
    input:
        matrices=all_outputs(layout.TRANSFER, denoisers=section_denoisers("transfer")),
    output:
        table=layout.TRANSFER_TABLE,
        png=report(
            layout.TRANSFER_PNG,
            caption="../report/transfer.rst",
            category="Attack strength",
        ),
        svg=layout.TRANSFER_SVG,
    log:
        layout.log(layout.TRANSFER_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("transfer_table")
    resources:
        **job_resources("transfer_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/transfer_table.py"
