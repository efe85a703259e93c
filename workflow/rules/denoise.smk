rule denoise:
    input:
        images=layout.ADVERSARIAL,
        denoiser=layout.DENOISER,
    output:
        layout.DENOISED,
    log:
        layout.log(layout.DENOISED),
    benchmark:
        layout.benchmark(layout.DENOISED)
    conda:
        TORCH_ENV
    threads: job_threads("denoise")
    resources:
        **job_resources("denoise", mem_mb=2000, runtime=60, gpu=True),
    params:
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
        inference=config["inference"],
    script:
        "../scripts/denoise.py"
