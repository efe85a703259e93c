# One job denoises every image set of a (classifier, shard) at every sigma and classifies what
# it denoised: the denoised images are kept (the transfer matrix and the examples figure read
# them). The models load once and Python starts once for the whole family; the draws are
# seeded per (sigma, image), so the files are the same as one job per set and sigma would write.
rule denoise_and_classify:
    input:
        images=every_set(layout.ADVERSARIAL),
        denoiser=layout.DENOISER,
        classifier=layout.CLASSIFIER,
    output:
        denoised=every_set(layout.DENOISED, sigma=SIGMAS),
        predictions=every_set(layout.PREDICTIONS_DENOISED, sigma=SIGMAS),
    log:
        layout.log(layout.DENOISE_JOB),
    benchmark:
        layout.benchmark(layout.DENOISE_JOB)
    conda:
        TORCH_ENV
    threads: job_threads("denoise_and_classify")
    resources:
        **job_resources("denoise_and_classify", mem_mb=2000, runtime=60, gpu=True),
    params:
        sigmas=[float(s) for s in SIGMAS],
        seed=config["seed"],
        batch_size=batch_size("denoise_and_classify"),
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/denoise_and_classify.py"


# the jobs the accuracy tables need (a denoiser only the transfer or attention section lists
# denoises too, but is left out of the report's table of time per stage)
report_benchmarks(
    "denoise_and_classify",
    layout.DENOISE_JOB,
    denoisers=ACCURACY_DENOISERS,
    every_classifier=True,
)
