# One job denoises a set and classifies what it denoised: the denoised images are kept (the
# transfer matrix and the examples figure read them), and classifying them in the same job
# spares one job per (set, sigma), which is a third of the DAG at cluster scale.
rule denoise_and_classify:
    input:
        images=layout.ADVERSARIAL,
        denoiser=layout.DENOISER,
        classifier=layout.CLASSIFIER,
    output:
        denoised=layout.DENOISED,
        predictions=layout.PREDICTIONS_DENOISED,
    log:
        layout.log(layout.DENOISED),
    benchmark:
        layout.benchmark(layout.DENOISED)
    conda:
        TORCH_ENV
    threads: job_threads("denoise_and_classify")
    resources:
        **job_resources("denoise_and_classify", mem_mb=2000, runtime=60, gpu=True),
    params:
        sigma=lambda wildcards: float(wildcards.sigma),
        seed=config["seed"],
        batch_size=batch_size("denoise_and_classify"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/denoise_and_classify.py"


report_benchmarks("denoise_and_classify", layout.DENOISED, every_classifier=True)
