rule certify_clean:
    input:
        images=layout.SAMPLE_EVAL,
        denoiser=layout.DENOISER,
        classifiers=expand(
            layout.CLASSIFIER, classifier=CLASSIFIERS, allow_missing=True
        ),
    output:
        expand(layout.CERTIFICATES_CLEAN, classifier=CLASSIFIERS, allow_missing=True),
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
        spec=CERTIFY,
        rows=lambda wildcards: certify_rows(wildcards, shard_file=False),
        classifiers=CLASSIFIERS,
        seed=config["seed"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/certify.py"


rule certify_adversarial:
    input:
        images=layout.ADVERSARIAL,
        denoiser=layout.DENOISER,
        classifiers=[layout.CLASSIFIER],
    output:
        layout.CERTIFICATES_ADVERSARIAL,
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
        spec=CERTIFY,
        rows=lambda wildcards: certify_rows(wildcards, shard_file=True),
        classifiers=lambda wildcards: [wildcards.classifier],
        seed=config["seed"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/certify.py"


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
        sigmas=SIGMAS,
        shards=CERTIFY_SHARDS,
        adversarial_sets=ADVERSARIAL_CERTIFIED,
    script:
        "../scripts/certified_table.py"
