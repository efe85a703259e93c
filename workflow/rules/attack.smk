rule attack:
    input:
        eval=layout.SAMPLE_EVAL,
        classifier=layout.CLASSIFIER,
    output:
        adversarial=layout.ADVERSARIAL,
    log:
        layout.log(layout.ADVERSARIAL),
    benchmark:
        layout.benchmark(layout.ADVERSARIAL)
    conda:
        TORCH_ENV
    threads: job_threads("attack")
    resources:
        **job_resources("attack", mem_mb=2000, runtime=60, gpu=True),
    params:
        spec=attack_settings,
        attack_name=lambda wildcards: wildcards.attack,
        classifier_name=lambda wildcards: wildcards.classifier,
        epsilon=lambda wildcards: float(wildcards.epsilon),
        shard=lambda wildcards: int(wildcards.shard),
        shard_size=config["dataset"]["shard_size"],
        seed=config["seed"],
        batch_size=batch_size("attack"),
        device=config["device"],
    script:
        "../scripts/attack.py"


report_benchmarks("attack", layout.ADVERSARIAL)
