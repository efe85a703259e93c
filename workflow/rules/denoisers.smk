rule train_denoiser:
    input:
        train=layout.SAMPLE_TRAIN,
    output:
        weights=layout.DENOISER,
        metrics=layout.DENOISER_METRICS,
    log:
        layout.log(layout.DENOISER),
    benchmark:
        layout.benchmark(layout.DENOISER)
    wildcard_constraints:
        denoiser=one_of(DDPMS),
    # the longest job on a CPU: started first, beside the classifiers, on one core
    priority: 100
    conda:
        TORCH_ENV
    threads: job_threads("train_denoiser")
    resources:
        **job_resources("train_denoiser", mem_mb=3000, runtime=720, gpu=True),
    params:
        name=lambda wildcards: wildcards.denoiser,
        spec=lambda wildcards: config["denoisers"][wildcards.denoiser],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/train_denoiser.py"


report_benchmarks(
    "train_denoiser",
    layout.DENOISER,
    denoisers=[*DDPMS, *OPENAI],
    every_classifier=True,
)


# diffusion calibration: the base denoiser fine-tuned for a frozen classifier; its own
# benchmark, so the report shows what the calibration costs
rule calibrate_denoiser:
    input:
        train=layout.SAMPLE_TRAIN,
        base=lambda wildcards: layout.fill(
            layout.DENOISER,
            dataset=DATASET,
            denoiser=CALIBRATED[wildcards.denoiser]["base"],
        ),
        classifier=lambda wildcards: layout.fill(
            layout.CLASSIFIER,
            dataset=DATASET,
            classifier=CALIBRATED[wildcards.denoiser]["classifier"],
        ),
    output:
        weights=layout.DENOISER,
        metrics=layout.DENOISER_METRICS,
    log:
        layout.log(layout.DENOISER),
    benchmark:
        layout.benchmark(layout.DENOISER_METRICS)
    wildcard_constraints:
        denoiser=one_of(CALIBRATED),
    priority: 90
    conda:
        TORCH_ENV
    threads: job_threads("calibrate_denoiser")
    resources:
        **job_resources("calibrate_denoiser", mem_mb=3000, runtime=720, gpu=True),
    params:
        name=lambda wildcards: wildcards.denoiser,
        spec=lambda wildcards: CALIBRATED[wildcards.denoiser],
        sigmas=lambda wildcards: CALIBRATED[wildcards.denoiser]["sigmas"]
        or config["sigmas"],
        seed=config["seed"],
        device=config["device"],
        # a checkpoint every spec.checkpoint_every steps, from which a rerun continues
        checkpoint=lambda wildcards: layout.fill(
            layout.DENOISER_CHECKPOINT, **wildcards
        ),
    script:
        "../scripts/calibrate_denoiser.py"


report_benchmarks(
    "calibrate_denoiser",
    layout.DENOISER_METRICS,
    denoisers=list(CALIBRATED),
    every_classifier=True,
)


# an improved- or guided-diffusion checkpoint, official or the user's own (its flags in the
# config): verified (sha256, strict load) once, then referenced by the denoiser file that
# every stage loads (and verifies again)
rule openai_denoiser:
    input:
        checkpoint=checkpoint_file,
    output:
        weights=layout.DENOISER,
        metrics=layout.DENOISER_METRICS,
    log:
        layout.log(layout.DENOISER),
    # the benchmark of the stage that makes these files for the other kind
    benchmark:
        layout.benchmark(layout.DENOISER)
    wildcard_constraints:
        denoiser=one_of(OPENAI),
    conda:
        TORCH_ENV
    threads: job_threads("openai_denoiser")
    resources:
        **job_resources("openai_denoiser", mem_mb=8000, runtime=30),
    params:
        name=lambda wildcards: wildcards.denoiser,
        spec=lambda wildcards: OPENAI[wildcards.denoiser],
    script:
        "../scripts/openai_denoiser.py"


# downloads run where the workflow starts, since cluster nodes are often offline
rule fetch_denoiser:
    output:
        checkpoint=layout.CHECKPOINT,
    log:
        layout.log(layout.CHECKPOINT),
    wildcard_constraints:
        checkpoint=one_of(DOWNLOADS),
    localrule: True
    conda:
        TORCH_ENV
    threads: job_threads("fetch_denoiser")
    resources:
        **job_resources("fetch_denoiser", mem_mb=1000, runtime=60),
    params:
        url=lambda wildcards: DOWNLOADS[wildcards.checkpoint]["url"],
        sha256=lambda wildcards: DOWNLOADS[wildcards.checkpoint]["sha256"],
    script:
        "../scripts/fetch_denoiser.py"


# multi-step purification: a reference to its base's file (and that file's sha256) with the
# sampler's settings; changing the base or a setting remakes it and what depends on it
rule multistep_denoiser:
    input:
        base=lambda wildcards: layout.fill(
            layout.DENOISER,
            dataset=DATASET,
            denoiser=MULTISTEP[wildcards.denoiser]["base"],
        ),
    output:
        weights=layout.DENOISER,
        metrics=layout.DENOISER_METRICS,
    log:
        layout.log(layout.DENOISER),
    wildcard_constraints:
        denoiser=one_of(MULTISTEP),
    conda:
        TORCH_ENV
    threads: job_threads("multistep_denoiser")
    resources:
        **job_resources("multistep_denoiser", mem_mb=500, runtime=10),
    params:
        name=lambda wildcards: wildcards.denoiser,
        spec=lambda wildcards: MULTISTEP[wildcards.denoiser],
    script:
        "../scripts/multistep_denoiser.py"
