rule certify_clean:
    input:
        images=layout.SAMPLE_EVAL,
        denoiser=layout.DENOISER,
        classifiers=expand(
            layout.CLASSIFIER, classifier=CERTIFY_CLASSIFIERS, allow_missing=True
        ),
    output:
        certificates=expand(
            layout.CERTIFICATES_CLEAN,
            classifier=CERTIFY_CLASSIFIERS,
            allow_missing=True,
        ),
    log:
        layout.log(layout.CERTIFY_CLEAN_JOB),
    benchmark:
        layout.benchmark(layout.CERTIFY_CLEAN_JOB)
    conda:
        TORCH_ENV
    threads: job_threads("certify_clean")
    resources:
        **job_resources("certify_clean", mem_mb=2000, runtime=240, gpu=True),
    params:
        spec=CERTIFY_SETTINGS,
        rows=lambda wildcards: certify_rows(wildcards, shard_file=False),
        sigma=lambda wildcards: float(wildcards.sigma),
        seed=config["seed"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/certify_clean.py"


report_benchmarks(
    "certify_clean",
    layout.CERTIFY_CLEAN_JOB,
    enabled=CERTIFY["enabled"],
    shards=CERTIFY_SHARDS,
    **section_models("certify"),
)


rule certify_adversarial:
    input:
        images=layout.ADVERSARIAL,
        denoiser=layout.DENOISER,
        classifiers=layout.CLASSIFIER,
    output:
        certificates=layout.CERTIFICATES_ADVERSARIAL,
    log:
        layout.log(layout.CERTIFICATES_ADVERSARIAL),
    benchmark:
        layout.benchmark(layout.CERTIFICATES_ADVERSARIAL)
    conda:
        TORCH_ENV
    threads: job_threads("certify_adversarial")
    resources:
        **job_resources("certify_adversarial", mem_mb=2000, runtime=240, gpu=True),
    params:
        spec=CERTIFY_SETTINGS,
        rows=lambda wildcards: certify_rows(wildcards, shard_file=True),
        sigma=lambda wildcards: float(wildcards.sigma),
        seed=config["seed"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/certify_adversarial.py"


report_benchmarks(
    "certify_adversarial",
    layout.CERTIFICATES_ADVERSARIAL,
    enabled=CERTIFY["enabled"],
    shards=CERTIFY_SHARDS,
    epsilons=CERTIFY_EPSILONS,
    **CERTIFY_ADVERSARIAL,
)


rule certified_table:
    input:
        unpack(get_certified_inputs),
    output:
        table=layout.CERTIFIED,
        tex=layout.CERTIFIED_TEX,
        png=report(
            layout.CERTIFIED_PNG,
            caption="../report/certified.rst",
            category="Certification",
        ),
        svg=layout.CERTIFIED_SVG,
        tsv=expand(layout.CERTIFICATES_TSV, sigma=SIGMAS, allow_missing=True),
        multiscale=layout.MULTISCALE_EXAMPLES,
    log:
        layout.log(layout.CERTIFIED),
    benchmark:
        layout.benchmark(layout.CERTIFIED)
    conda:
        REPORT_ENV
    threads: job_threads("certified_table")
    resources:
        **job_resources("certified_table", mem_mb=1000, runtime=30),
    params:
        spec=CERTIFY,
        dataset=DATASET,
        classifier=lambda wildcards: wildcards.classifier,
        denoiser=lambda wildcards: wildcards.denoiser,
    script:
        "../scripts/certified_table.py"


report_benchmarks(
    "certified_table",
    layout.CERTIFIED,
    enabled=CERTIFY["enabled"],
    **section_models("certify"),
)
