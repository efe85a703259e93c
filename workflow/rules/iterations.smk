rule iterations_sweep:
    input:
        images=layout.SAMPLE_EVAL,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        accuracy=layout.ITERATIONS,
    log:
        layout.log(layout.ITERATIONS),
    benchmark:
        layout.benchmark(layout.ITERATIONS)
    conda:
        TORCH_ENV
    threads: job_threads("iterations_sweep")
    resources:
        **job_resources("iterations_sweep", mem_mb=2000, runtime=120, gpu=True),
    params:
        classifier_name=lambda wildcards: wildcards.classifier,
        attack_name=lambda wildcards: wildcards.attack,
        denoiser_name=lambda wildcards: wildcards.denoiser,
        spec=attack_settings,
        sweep=settings(ITERATIONS),
        sigmas=SIGMAS,
        seed=config["seed"],
        batch_size=batch_size("iterations_sweep"),
        device=config["device"],
    script:
        "../scripts/iterations_sweep.py"


report_benchmarks(
    "iterations_sweep",
    layout.ITERATIONS,
    enabled=ITERATIONS["enabled"],
    attacks=section_attack("iterations"),
    **section_models("iterations"),
)


rule iterations_table:
    input:
        sweeps=all_outputs(
            layout.ITERATIONS,
            attacks=section_attack("iterations"),
            **section_models("iterations"),
        ),
    output:
        table=layout.ITERATIONS_TABLE,
        png=report(
            layout.ITERATIONS_PNG,
            caption="../report/iterations.rst",
            category="Attack strength",
        ),
        svg=layout.ITERATIONS_SVG,
    log:
        layout.log(layout.ITERATIONS_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("iterations_table")
    resources:
        **job_resources("iterations_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/iterations_table.py"
