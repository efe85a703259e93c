rule adaptive_attack:
    input:
        images=layout.SAMPLE_EVAL,
        unaware=get_unaware_sets,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        results=layout.ADAPTIVE,
    log:
        layout.log(layout.ADAPTIVE),
    benchmark:
        layout.benchmark(layout.ADAPTIVE)
    conda:
        TORCH_ENV
    threads: job_threads("adaptive_attack")
    resources:
        **job_resources("adaptive_attack", mem_mb=3000, runtime=240, gpu=True),
    params:
        classifier_name=lambda wildcards: wildcards.classifier,
        attack_name=lambda wildcards: wildcards.attack,
        denoiser_name=lambda wildcards: wildcards.denoiser,
        sigma=lambda wildcards: float(wildcards.sigma),
        spec=attack_settings,
        adaptive=settings(ADAPTIVE),
        num_images=ADAPTIVE_IMAGES,
        seed=config["seed"],
        batch_size=batch_size("adaptive_attack"),
        device=config["device"],
    script:
        "../scripts/adaptive_attack.py"


report_benchmarks(
    "adaptive_attack",
    layout.ADAPTIVE,
    enabled=ADAPTIVE["enabled"],
    attacks=section_attack("adaptive"),
    sigmas=ADAPTIVE_SIGMAS,
    **section_models("adaptive"),
)


rule adaptive_table:
    input:
        results=all_outputs(
            layout.ADAPTIVE,
            attacks=section_attack("adaptive"),
            sigmas=ADAPTIVE_SIGMAS,
            **section_models("adaptive"),
        ),
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
    params:
        dataset=lambda wildcards: wildcards.dataset,
    script:
        "../scripts/adaptive_table.py"
