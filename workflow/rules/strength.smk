rule iterations:
    input:
        eval=layout.SAMPLE_EVAL,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        layout.ITERATIONS,
    log:
        layout.log(layout.ITERATIONS),
    benchmark:
        layout.benchmark(layout.ITERATIONS)
    conda:
        TORCH_ENV
    threads: job_threads("iterations")
    resources:
        **job_resources("iterations", mem_mb=2000, runtime=120, gpu=True),
    params:
        spec=lambda wildcards: config["attacks"][wildcards.attack],
        sweep=ITERATIONS,
        sigmas=SIGMAS,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/iterations.py"


rule iterations_table:
    input:
        all_outputs(layout.ITERATIONS, attacks=section_attack("iterations")),
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


rule adaptive:
    input:
        eval=layout.SAMPLE_EVAL,
        unaware=get_unaware_sets,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        layout.ADAPTIVE,
    log:
        layout.log(layout.ADAPTIVE),
    benchmark:
        layout.benchmark(layout.ADAPTIVE)
    conda:
        TORCH_ENV
    threads: job_threads("adaptive")
    resources:
        **job_resources("adaptive", mem_mb=3000, runtime=240, gpu=True),
    params:
        spec=lambda wildcards: config["attacks"][wildcards.attack],
        adaptive=ADAPTIVE,
        images=ADAPTIVE_IMAGES,
        epsilons=ADAPTIVE_EPSILONS,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/adaptive.py"


rule adaptive_table:
    input:
        all_outputs(layout.ADAPTIVE, attacks=section_attack("adaptive")),
    output:
        table=layout.ADAPTIVE_TABLE,
        tex=layout.ADAPTIVE_TEX,
        png=report(
            layout.ADAPTIVE_PNG,
            caption="../report/adaptive.rst",
            category="Attack strength",
        ),
        svg=layout.ADAPTIVE_SVG,
    log:
        layout.log(layout.ADAPTIVE_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("adaptive_table")
    resources:
        **job_resources("adaptive_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/adaptive_table.py"


rule transfer:
    input:
        unpack(get_transfer_inputs),
    output:
        layout.TRANSFER,
    log:
        layout.log(layout.TRANSFER),
    benchmark:
        layout.benchmark(layout.TRANSFER)
    conda:
        TORCH_ENV
    threads: job_threads("transfer")
    resources:
        **job_resources("transfer", mem_mb=2000, runtime=60, gpu=True),
    params:
        epsilons=lambda wildcards: EPSILONS[wildcards.attack],
        sigmas=SIGMAS,
        classifiers=CLASSIFIERS,
        batch_size=config["batch_size"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/transfer.py"


rule transfer_table:
    input:
        all_outputs(layout.TRANSFER),
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
