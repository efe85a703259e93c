rule blur_noise:
    input:
        # the epsilon-0 set of the first attack is the clean shard
        images=lambda wildcards: layout.fill(
            layout.ADVERSARIAL,
            dataset=wildcards.dataset,
            classifier=wildcards.classifier,
            attack=FIRST["attack"],
            epsilon=0.0,
            shard=wildcards.shard,
        ),
        classifier=layout.CLASSIFIER,
    output:
        layout.BLUR_CLEAN,
    log:
        layout.log(layout.BLUR_CLEAN),
    benchmark:
        layout.benchmark(layout.BLUR_CLEAN)
    conda:
        TORCH_ENV
    threads: job_threads("blur_noise")
    resources:
        **job_resources("blur_noise", mem_mb=2000, runtime=30, gpu=True),
    params:
        spec=BLUR,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/blur.py"


rule blur_adversarial:
    input:
        images=layout.ADVERSARIAL,
        classifier=layout.CLASSIFIER,
    output:
        layout.BLUR_ADVERSARIAL,
    log:
        layout.log(layout.BLUR_ADVERSARIAL),
    benchmark:
        layout.benchmark(layout.BLUR_ADVERSARIAL)
    conda:
        TORCH_ENV
    threads: job_threads("blur_adversarial")
    resources:
        **job_resources("blur_adversarial", mem_mb=2000, runtime=30, gpu=True),
    params:
        spec=BLUR,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/blur.py"


rule blur_table:
    input:
        unpack(get_blur_inputs),
    output:
        table=layout.BLUR_TABLE,
        tex=layout.BLUR_TEX,
    log:
        layout.log(layout.BLUR_TABLE),
    benchmark:
        layout.benchmark(layout.BLUR_TABLE)
    conda:
        REPORT_ENV
    threads: job_threads("blur_table")
    resources:
        **job_resources("blur_table", mem_mb=1000, runtime=30),
    params:
        noise_levels=NOISE_LEVELS,
        epsilons=EPSILONS,
        shards=SHARDS,
    script:
        "../scripts/blur_table.py"


rule defences:
    input:
        accuracy=all_outputs(layout.TABLE),
        blur=all_outputs(layout.BLUR_TABLE),
    output:
        table=layout.DEFENCES,
        png=report(
            layout.DEFENCES_PNG,
            caption="../report/defences.rst",
            category="Defences",
        ),
        svg=layout.DEFENCES_SVG,
    log:
        layout.log(layout.DEFENCES),
    conda:
        REPORT_ENV
    threads: job_threads("defences")
    resources:
        **job_resources("defences", mem_mb=1000, runtime=30),
    script:
        "../scripts/defences.py"
