# one job per (classifier, shard) at every noise level, one over every image set (every_set)
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
        predictions=expand(layout.BLUR_CLEAN, noise=NOISE_LEVELS, allow_missing=True),
    log:
        layout.log(layout.BLUR_NOISE_JOB),
    benchmark:
        layout.benchmark(layout.BLUR_NOISE_JOB)
    conda:
        TORCH_ENV
    threads: job_threads("blur_noise")
    resources:
        **job_resources("blur_noise", mem_mb=2000, runtime=30, gpu=True),
    params:
        spec=BLUR,
        noise_levels=[float(n) for n in NOISE_LEVELS],
        seed=config["seed"],
        batch_size=batch_size("blur_noise"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/blur_noise.py"


report_benchmarks("blur_noise", layout.BLUR_NOISE_JOB, enabled=BLUR["enabled"])


rule blur_adversarial:
    input:
        images=every_set(layout.ADVERSARIAL),
        classifier=layout.CLASSIFIER,
    output:
        predictions=every_set(layout.BLUR_ADVERSARIAL),
    log:
        layout.log(layout.BLUR_ADVERSARIAL_JOB),
    benchmark:
        layout.benchmark(layout.BLUR_ADVERSARIAL_JOB)
    conda:
        TORCH_ENV
    threads: job_threads("blur_adversarial")
    resources:
        **job_resources("blur_adversarial", mem_mb=2000, runtime=30, gpu=True),
    params:
        spec=BLUR,
        batch_size=batch_size("blur_adversarial"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/blur_adversarial.py"


report_benchmarks(
    "blur_adversarial", layout.BLUR_ADVERSARIAL_JOB, enabled=BLUR["enabled"]
)


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
        dataset=DATASET,
        classifier=lambda wildcards: wildcards.classifier,
    script:
        "../scripts/blur_table.py"


report_benchmarks("blur_table", layout.BLUR_TABLE, enabled=BLUR["enabled"])


rule defences_table:
    input:
        accuracy=all_outputs(
            layout.TABLE, denoisers=ACCURACY_DENOISERS, every_classifier=True
        ),
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
    threads: job_threads("defences_table")
    resources:
        **job_resources("defences_table", mem_mb=1000, runtime=30),
    script:
        "../scripts/defences_table.py"
