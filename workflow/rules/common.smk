from pathlib import Path

import dds.config
from dds import layout

dds.config.validate(
    config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
)

DATASET = config["dataset"]["name"]
SIGMAS = [layout.num(s) for s in config["sigmas"]]
# the clean set is the attack at epsilon 0, so every table has its clean row
EPSILONS = {
    name: [layout.num(e) for e in sorted({0.0, *map(float, spec["epsilons"])})]
    for name, spec in config["attacks"].items()
}
N_SHARDS = -(-config["dataset"]["eval_size"] // config["dataset"]["shard_size"])
SHARDS = list(range(N_SHARDS))
# CPU-only runs declare no GPU, so `--resources gpu=N` does not throttle them
GPU = 0 if config["device"] == "cpu" else 1
ENV = "../../envs/dds.yaml"


wildcard_constraints:
    dataset=DATASET,
    classifier="|".join(config["classifiers"]),
    denoiser="|".join(config["denoisers"]),
    attack="|".join(config["attacks"]),
    epsilon=r"[0-9]+\.[0-9]+(e-[0-9]+)?",
    sigma=r"[0-9]+\.[0-9]+(e-[0-9]+)?",
    shard=r"[0-9]+",


def table_grid(attack):
    """The parameters that name every input of one accuracy table, in a fixed order."""
    return {"epsilons": EPSILONS[attack], "sigmas": SIGMAS, "shards": SHARDS}


def get_table_inputs(wildcards):
    grid = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        shard=SHARDS,
    )
    eps = EPSILONS[wildcards.attack]
    return {
        "adversarial": expand(layout.ADVERSARIAL, epsilon=eps, **grid),
        "undefended": expand(layout.PREDICTIONS_UNDEFENDED, epsilon=eps, **grid),
        "denoised": expand(
            layout.PREDICTIONS_DENOISED,
            epsilon=eps,
            sigma=SIGMAS,
            denoiser=wildcards.denoiser,
            **grid,
        ),
    }


def all_outputs(pattern):
    """Every concrete path of a pattern, over the axes it names (epsilons depend on the attack)."""
    axes = dict(
        dataset=DATASET,
        classifier=list(config["classifiers"]),
        denoiser=list(config["denoisers"]),
        sigma=SIGMAS,
        shard=SHARDS,
    )
    paths = set()
    for attack in config["attacks"]:
        paths.update(expand(pattern, attack=attack, epsilon=EPSILONS[attack], **axes))
    return sorted(paths)


# the stage of each rule before the report, by the pattern of its main output
STAGES = {
    "sample": layout.MANIFEST,
    "train_classifier": layout.CLASSIFIER,
    "train_denoiser": layout.DENOISER,
    "attack": layout.ADVERSARIAL,
    "denoise": layout.DENOISED,
    "classify_undefended": layout.PREDICTIONS_UNDEFENDED,
    "classify_denoised": layout.PREDICTIONS_DENOISED,
    "accuracy_table": layout.TABLE,
}


# the examples figure shows the first classifier, attack and denoiser of the config
FIRST = {
    axis: next(iter(config[axis + "s"]))
    for axis in ("classifier", "attack", "denoiser")
}


def get_example_inputs(wildcards):
    where = dict(dataset=DATASET, shard=0, **FIRST)
    return {
        "clean": layout.fill(layout.ADVERSARIAL, epsilon=0.0, **where),
        "adversarial": layout.fill(
            layout.ADVERSARIAL, epsilon=float(EPSILONS[FIRST["attack"]][-1]), **where
        ),
        "denoised": [
            layout.fill(
                layout.DENOISED,
                epsilon=float(EPSILONS[FIRST["attack"]][-1]),
                sigma=float(s),
                **where,
            )
            for s in SIGMAS
        ],
    }


def get_benchmarks(wildcards):
    """The benchmark file (time, peak memory) of every job before the report, by stage."""
    return {stage: all_outputs(layout.benchmark(p)) for stage, p in STAGES.items()}


def get_final_output():
    return [layout.fill(layout.REPORT, dataset=DATASET), *all_outputs(layout.TABLE_TEX)]
