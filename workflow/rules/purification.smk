# one-shot denoising beside multi-step purification on the same images: clean, the unaware
# PGD, the adaptive attack with exact gradients through the chain, BPDA, and certification;
# one job per (denoiser, sigma), the chain's passes shared by the classifiers' certificates
rule purification:
    input:
        unpack(get_purification_inputs),
        images=layout.SAMPLE_EVAL,
        denoiser=layout.DENOISER,
    output:
        results=layout.PURIFICATION,
        certificates=layout.PURIFICATION_CERTIFICATES,
    log:
        layout.log(layout.PURIFICATION),
    benchmark:
        layout.benchmark(layout.PURIFICATION)
    # the longest jobs of the demo (a 20-step chain): started first, not left for the end
    priority: 40
    conda:
        TORCH_ENV
    threads: job_threads("purification")
    resources:
        **job_resources("purification", mem_mb=3000, runtime=240, gpu=True),
    params:
        classifier_names=PURIFICATION_CLASSIFIERS,
        denoiser_name=lambda wildcards: wildcards.denoiser,
        sigma=lambda wildcards: float(wildcards.sigma),
        spec=settings(PURIFICATION),
        attack_spec=settings(config["attacks"].get(PURIFICATION.get("attack"), {})),
        certify=PURIFICATION_CERTIFY,
        num_images=PURIFICATION_IMAGES,
        seed=config["seed"],
        batch_size=batch_size("purification"),
        device=config["device"],
    script:
        "../scripts/purification.py"


report_benchmarks(
    "purification",
    layout.PURIFICATION,
    enabled=PURIFICATION["enabled"],
    denoisers=PURIFICATION.get("denoisers", []),
    sigmas=PURIFICATION_SIGMAS,
    every_classifier=True,
)


rule purification_table:
    input:
        results=expand(
            layout.PURIFICATION,
            dataset=DATASET,
            denoiser=PURIFICATION.get("denoisers", []),
            sigma=PURIFICATION_SIGMAS,
        ),
        certificates=expand(
            layout.PURIFICATION_CERTIFICATES,
            dataset=DATASET,
            denoiser=PURIFICATION.get("denoisers", []),
            sigma=PURIFICATION_SIGMAS,
        ),
    output:
        table=layout.PURIFICATION_TABLE,
        tex=layout.PURIFICATION_TEX,
        png=report(
            layout.PURIFICATION_PNG,
            caption="../report/purification.rst",
            category="Attack strength",
        ),
        svg=layout.PURIFICATION_SVG,
    log:
        layout.log(layout.PURIFICATION_TABLE),
    conda:
        REPORT_ENV
    threads: job_threads("purification_table")
    resources:
        **job_resources("purification_table", mem_mb=1000, runtime=30),
    params:
        dataset=DATASET,
        radii=CERTIFY["radii"],
    script:
        "../scripts/purification_table.py"
