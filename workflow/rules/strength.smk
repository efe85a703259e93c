ITERATIONS = config["iterations"]
ADAPTIVE = config["adaptive"]
TRANSFER = config["transfer"]
ADAPTIVE_IMAGES = min(ADAPTIVE["num_images"], config["dataset"]["eval_size"])
ADAPTIVE_EPSILONS = [layout.num(e) for e in sorted(map(float, ADAPTIVE.get("epsilons", [])))]
ADAPTIVE_SHARDS = list(range(-(-ADAPTIVE_IMAGES // SHARD_SIZE)))


def get_unaware_sets(wildcards):
    """The unaware PGD shards holding the adaptive attack's images, epsilon by epsilon."""
    return [
        layout.fill(
            layout.ADVERSARIAL,
            dataset=DATASET,
            classifier=wildcards.classifier,
            attack=wildcards.attack,
            epsilon=float(eps),
            shard=shard,
        )
        for eps in ADAPTIVE_EPSILONS
        for shard in ADAPTIVE_SHARDS
    ]


def get_transfer_inputs(wildcards):
    """The source's adversarial and denoised shards, epsilon by epsilon (then sigma)."""
    where = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        denoiser=wildcards.denoiser,
    )
    eps = EPSILONS[wildcards.attack]
    return {
        "adversarial": [
            layout.fill(layout.ADVERSARIAL, epsilon=float(e), shard=s, **where)
            for e in eps
            for s in SHARDS
        ],
        "denoised": [
            layout.fill(layout.DENOISED, epsilon=float(e), sigma=float(g), shard=s, **where)
            for g in SIGMAS
            for e in eps
            for s in SHARDS
        ],
        "classifiers": expand(
            layout.CLASSIFIER, dataset=DATASET, classifier=CLASSIFIERS
        ),
    }


rule iterations:
    input:
        eval=layout.SAMPLE_EVAL,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        layout.ITERATIONS,
    log:
        layout.log(layout.ITERATIONS),
    benchmark:
        layout.benchmark(layout.ITERATIONS)
    conda:
        ENV
    resources:
        mem_mb=2000,
        gpu=GPU,
    params:
        spec=lambda wildcards: config["attacks"][wildcards.attack],
        sweep=ITERATIONS,
        sigmas=SIGMAS,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/iterations.py"


rule iterations_table:
    input:
        expand(
            layout.ITERATIONS,
            dataset=DATASET,
            classifier=CLASSIFIERS,
            attack=ITERATIONS.get("attack", ""),
            denoiser=list(config["denoisers"]),
        ),
    output:
        table=layout.ITERATIONS_TABLE,
        png=report(
            layout.ITERATIONS_PNG,
            caption="../report/iterations.rst",
            category="Attack strength",
        ),
        svg=layout.ITERATIONS_SVG,
    log:
        layout.log(layout.ITERATIONS_TABLE),
    conda:
        ENV
    resources:
        mem_mb=1000,
    script:
        "../scripts/iterations_table.py"


rule adaptive:
    input:
        eval=layout.SAMPLE_EVAL,
        unaware=get_unaware_sets,
        classifier=layout.CLASSIFIER,
        denoiser=layout.DENOISER,
    output:
        layout.ADAPTIVE,
    log:
        layout.log(layout.ADAPTIVE),
    benchmark:
        layout.benchmark(layout.ADAPTIVE)
    conda:
        ENV
    resources:
        mem_mb=3000,
        gpu=GPU,
    params:
        spec=lambda wildcards: config["attacks"][wildcards.attack],
        adaptive=ADAPTIVE,
        images=ADAPTIVE_IMAGES,
        epsilons=ADAPTIVE_EPSILONS,
        seed=config["seed"],
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/adaptive.py"


rule adaptive_table:
    input:
        expand(
            layout.ADAPTIVE,
            dataset=DATASET,
            classifier=CLASSIFIERS,
            attack=ADAPTIVE.get("attack", ""),
            denoiser=list(config["denoisers"]),
            sigma=SIGMAS,
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
        ENV
    resources:
        mem_mb=1000,
    script:
        "../scripts/adaptive_table.py"


rule transfer:
    input:
        unpack(get_transfer_inputs),
    output:
        layout.TRANSFER,
    log:
        layout.log(layout.TRANSFER),
    benchmark:
        layout.benchmark(layout.TRANSFER)
    conda:
        ENV
    resources:
        mem_mb=2000,
        gpu=GPU,
    params:
        epsilons=lambda wildcards: EPSILONS[wildcards.attack],
        sigmas=SIGMAS,
        shards=len(SHARDS),
        classifiers=CLASSIFIERS,
        batch_size=config["batch_size"],
        device=config["device"],
    script:
        "../scripts/transfer.py"


rule transfer_table:
    input:
        all_outputs(layout.TRANSFER),
    output:
        table=layout.TRANSFER_TABLE,
        png=report(
            layout.TRANSFER_PNG,
            caption="../report/transfer.rst",
            category="Attack strength",
        ),
        svg=layout.TRANSFER_SVG,
    log:
        layout.log(layout.TRANSFER_TABLE),
    conda:
        ENV
    resources:
        mem_mb=1000,
    script:
        "../scripts/transfer_table.py"
