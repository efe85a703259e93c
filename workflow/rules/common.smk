import re
from pathlib import Path

import dds.attacks.budget
import dds.config
from dds import layout
from dds.retries import grows_with_attempt
from snakemake.io import strip_wildcard_constraints

dds.config.validate(
    config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
)

DATASET = config["dataset"]["name"]
CLASSIFIERS = list(config["classifiers"])
SIGMAS = [layout.num(s) for s in config["sigmas"]]
# the clean set is the attack at epsilon 0, so every table has its clean row
EPSILONS = {
    name: [layout.num(e) for e in sorted({0.0, *map(float, spec["epsilons"])})]
    for name, spec in config["attacks"].items()
}
SHARD_SIZE = config["dataset"]["shard_size"]
SHARDS = list(range(-(-config["dataset"]["eval_size"] // SHARD_SIZE)))
CERTIFY = config["certify"]
CERTIFY_IMAGES = min(CERTIFY["num_images"], config["dataset"]["eval_size"])
CERTIFY_SHARDS = list(range(-(-CERTIFY_IMAGES // SHARD_SIZE)))
CERTIFY_EPSILONS = [layout.num(e) for e in sorted(map(float, CERTIFY["epsilons"]))]
# what a certification job computes with (its radii, sets and denoisers are the tables' and
# the workflow's: changing them reruns no certificate)
CERTIFY_SETTINGS = {k: CERTIFY[k] for k in ("n0", "n", "alpha", "batch_size")}
BLUR = config["blur"]
NOISE_LEVELS = [layout.num(n) for n in BLUR["noise_levels"]]
# the conda environments (--software-deployment-method conda) of the rule families
TORCH_ENV = "../../envs/torch.yaml"
REPORT_ENV = "../../envs/report.yaml"
# the HTML template dds.reporting.html renders (src/dds/templates/, shipped with the package)
REPORT_TEMPLATE = str(Path(layout.__file__).with_name("templates") / "report.html")
RESOURCES = config["resources"]
# classifiers trained here or taken pretrained; denoisers trained here or official checkpoints
PRETRAINED = [n for n, s in config["classifiers"].items() if s["pretrained"]]
TRAINED = [n for n in CLASSIFIERS if n not in PRETRAINED]
OPENAI = {n: s for n, s in config["denoisers"].items() if s["kind"] == "openai"}
# denoisers fine-tuned here for a frozen classifier (diffusion calibration)
CALIBRATED = {n: s for n, s in config["denoisers"].items() if s["kind"] == "calibrated"}
# K reverse diffusion steps with another denoiser's network (multi-step purification)
MULTISTEP = {n: s for n, s in config["denoisers"].items() if s["kind"] == "multistep"}
DDPMS = [n for n, s in config["denoisers"].items() if s["kind"] == "ddpm"]
# the checkpoints fetch_denoiser downloads, by name (those no denoiser has a `path` for;
# dds.config checked that each name has one url, sha256 and architecture)
DOWNLOADS = {s["checkpoint"]: s for s in OPENAI.values() if "path" not in s}
for name, spec in OPENAI.items():
    if "path" in spec and not Path(spec["path"]).is_file():
        download = (
            f" ({spec['url']}), or remove `path` to let the fetch_denoiser rule download "
            "it to data/checkpoints/"
            if "url" in spec
            else ""
        )
        raise dds.config.ConfigError(
            f"config key 'denoisers.{name}.path': {spec['path']} not found. To fix: put "
            f"the {spec['checkpoint']} checkpoint file there{download}"
        )


def one_of(names):
    """A wildcard constraint matching exactly these names (none: a pattern matching nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def checkpoint_file(wildcards):
    """The official checkpoint of an openai denoiser: the user's copy, or the download."""
    spec = OPENAI[wildcards.denoiser]
    return spec.get("path") or layout.fill(
        layout.CHECKPOINT, checkpoint=spec["checkpoint"]
    )


def job_threads(rule):
    """Threads of a job of `rule`, and its SLURM CPUs per task: config key
    resources.rules.<rule>.cpus, default 1 (jobs compute little beside start-up)."""
    return RESOURCES["rules"].get(rule, {}).get("cpus", 1)


def job_resources(rule, mem_mb, runtime, gpu=False):
    """What a job of `rule` asks of the executor: `mem_mb` (MB) and `runtime` (minutes),
    unless config key resources.rules.<rule> overrides them (times the attempt when a failed
    job is retried), and its SLURM partition. A
    torch job (`gpu`) holds one GPU unless the device is cpu: `--resources gpu=N` caps them
    locally (dds.gpu_lease gives each its own device) and SLURM allocates one per job. The
    other jobs never ask for a GPU."""
    own = RESOURCES["rules"].get(rule, {})
    on_gpu = gpu and config["device"] != "cpu"
    asked = dict(
        mem_mb=grows_with_attempt(own.get("mem_mb", mem_mb)),
        runtime=grows_with_attempt(own.get("runtime", runtime)),
        slurm_partition=RESOURCES["gpu_partition" if on_gpu else "partition"],
    )
    if on_gpu:
        asked["gpu"] = 1
    return asked


# the rules that run in batches: each calls batch_size(rule) for its params
BATCHED = set()


def batch_size(rule):
    """Images per batch of a job of `rule`: config key batch_sizes.<rule>, default batch_size
    (a job halves it on a CUDA out-of-memory error: dds.batching)."""
    BATCHED.add(rule)
    return config["batch_sizes"].get(rule, config["batch_size"])


def check_batch_sizes():
    """Once all rules are defined, a batch size for a rule that runs no batches is a typo."""
    unknown = sorted(set(config["batch_sizes"]) - BATCHED)
    if unknown:
        raise dds.config.ConfigError(
            f"config key 'batch_sizes': no batched rule named {', '.join(unknown)}; the rules "
            f"that run in batches are {', '.join(sorted(BATCHED))} (certification's noise "
            "draws per pass: certify.batch_size)"
        )


def check_resource_overrides():
    """Once all rules are defined, an override for a rule that does not exist is a typo."""
    known = {rule.name for rule in workflow.rules}
    unknown = sorted(set(RESOURCES["rules"]) - known)
    if unknown:
        raise dds.config.ConfigError(
            f"config key 'resources.rules': no rule named {', '.join(unknown)}; "
            f"the rules are {', '.join(sorted(known))}"
        )


wildcard_constraints:
    dataset=DATASET,
    classifier="|".join(CLASSIFIERS),
    denoiser="|".join(config["denoisers"]),
    attack="|".join(config["attacks"]),
    epsilon=r"[0-9]+\.[0-9]+(e-[0-9]+)?",
    sigma=r"[0-9]+\.[0-9]+(e-[0-9]+)?",
    noise=r"[0-9]+\.[0-9]+(e-[0-9]+)?",
    shard=r"[0-9]+",


def get_table_inputs(wildcards):
    """The shards of one accuracy table: adversarial images and undefended predictions at each
    epsilon, denoised predictions at each (sigma, epsilon)."""
    grid = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        epsilon=EPSILONS[wildcards.attack],
        shard=SHARDS,
    )
    return {
        "adversarial": expand(layout.ADVERSARIAL, **grid),
        "undefended": expand(layout.PREDICTIONS_UNDEFENDED, **grid),
        "denoised": expand(
            layout.PREDICTIONS_DENOISED,
            sigma=SIGMAS,
            denoiser=wildcards.denoiser,
            **grid,
        ),
    }


def certify_rows(wildcards, shard_file):
    """The rows of its input file a certification job certifies (layout.certify_rows)."""
    return layout.certify_rows(
        int(wildcards.shard), SHARD_SIZE, CERTIFY_IMAGES, shard_file
    )


def get_certified_inputs(wildcards):
    """The certificates of one (classifier, denoiser), clean and adversarial, and the
    adversarial shards holding the perturbation norms (none without certify epsilons, or
    for a denoiser left out of certify.adversarial_denoisers);
    certified_table learns each file's sigma, attack and epsilon from its path."""
    where = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        denoiser=wildcards.denoiser,
        shard=CERTIFY_SHARDS,
    )
    epsilons = (
        CERTIFY_EPSILONS
        if wildcards.denoiser in CERTIFY_ADVERSARIAL["denoisers"]
        else []
    )
    attacked = dict(attack=list(config["attacks"]), epsilon=epsilons)
    return {
        "clean": expand(layout.CERTIFICATES_CLEAN, sigma=SIGMAS, **where),
        "adversarial": expand(
            layout.CERTIFICATES_ADVERSARIAL, sigma=SIGMAS, **attacked, **where
        ),
        "norms": expand(layout.ADVERSARIAL, **attacked, **where),
    }


def get_blur_inputs(wildcards):
    """The blur-majority shards of one classifier, clean (per noise level) and
    adversarial (per attack and epsilon); blur_table learns each file's noise, attack
    and epsilon from its path."""
    where = dict(dataset=DATASET, classifier=wildcards.classifier, shard=SHARDS)
    return {
        "clean": expand(layout.BLUR_CLEAN, noise=NOISE_LEVELS, **where),
        "adversarial": [
            path
            for attack in config["attacks"]
            for path in expand(
                layout.BLUR_ADVERSARIAL,
                attack=attack,
                epsilon=EPSILONS[attack],
                **where,
            )
        ],
    }


def paired(classifier, denoiser, every_classifier=False):
    """Whether the analyses of a defended classifier (certification, attacks that know the
    defence, transfer, attention) run on (classifier, denoiser): a calibrated denoiser is
    part of a defence with the classifier it was calibrated for, and is analysed with that
    one only, though the accuracy tables (`every_classifier`) still run it with every
    classifier (does it help them?); a multistep denoiser runs with its classifiers only.
    """
    spec = config["denoisers"][denoiser]
    if spec["kind"] == "multistep":
        return spec["classifiers"] is None or classifier in spec["classifiers"]
    return (
        every_classifier
        or spec["kind"] != "calibrated"
        or spec["classifier"] == classifier
    )


def section_denoisers(section):
    """The denoisers an analysis section runs on: its `denoisers` list, or every denoiser."""
    return config[section]["denoisers"] or list(config["denoisers"])


# the denoisers of the accuracy tables (a costly multi-step one may be left to purification)
ACCURACY_DENOISERS = section_denoisers("accuracy")


def section_models(section):
    """The denoisers and classifiers an analysis section runs on (all_outputs' axes): its
    `denoisers` and `classifiers` lists, or every one."""
    return dict(
        denoisers=section_denoisers(section),
        classifiers=config[section]["classifiers"] or CLASSIFIERS,
    )


CERTIFY_CLASSIFIERS = section_models("certify")["classifiers"]
# the denoisers and classifiers whose adversarial sets are certified as well
CERTIFY_ADVERSARIAL = section_models("certify")
if CERTIFY["adversarial_denoisers"] is not None:
    CERTIFY_ADVERSARIAL["denoisers"] = [
        d
        for d in CERTIFY_ADVERSARIAL["denoisers"]
        if d in CERTIFY["adversarial_denoisers"]
    ]


def all_outputs(
    pattern,
    shards=SHARDS,
    epsilons=None,
    attacks=None,
    denoisers=None,
    every_classifier=False,
    sigmas=SIGMAS,
    classifiers=CLASSIFIERS,
):
    """Every concrete path of a pattern, over the axes it names (epsilons depend on the
    attack unless given; all attacks, denoisers, sigmas and classifiers unless given; a
    calibrated denoiser with its own classifier only unless every_classifier, a multistep one
    with its own, see paired).
    """
    axes = dict(dataset=DATASET, sigma=sigmas, noise=NOISE_LEVELS, shard=shards)
    pairs = [
        (c, d)
        for c in classifiers
        for d in (config["denoisers"] if denoisers is None else denoisers)
        if paired(c, d, every_classifier)
    ]
    paths = set()
    for attack in config["attacks"] if attacks is None else attacks:
        eps = EPSILONS[attack] if epsilons is None else epsilons
        for classifier, denoiser in pairs:
            paths.update(
                expand(
                    pattern,
                    attack=attack,
                    epsilon=eps,
                    classifier=classifier,
                    denoiser=denoiser,
                    **axes,
                )
            )
    return sorted(paths)


def settings(section, *keys):
    """A config section as a job's params, only `keys` if given, else without the keys that
    list what the workflow sweeps or which jobs run (epsilons, sigmas, denoisers, classifiers,
    enabled):
    those are no setting of any one job, and left in they would rerun every job of the section
    when a value is added (Snakemake's params trigger)."""
    if keys:
        return {key: section[key] for key in keys}
    return {
        key: value
        for key, value in section.items()
        if key not in ("epsilons", "sigmas", "denoisers", "classifiers", "enabled")
    }


def attack_settings(wildcards):
    """The settings of the wildcard's attack, as its jobs take them (see settings)."""
    return settings(config["attacks"][wildcards.attack])


def every_set(pattern, **axes):
    """A job's files of `pattern` for every image set of a (classifier, shard), the clean set and
    each attack's epsilons in config order, each at every value of `axes` (sigma=SIGMAS: the
    sigmas vary fastest); the other wildcards are left to the rule. The stages that compute
    little per set (classify, blur, denoise) run one job over them all, sparing a process
    start per set: adding an epsilon or sigma reruns those cheap jobs whole, and what reads
    their files aggregates over the sets anyway (docs/decisions.md)."""
    return [
        path
        for attack, epsilons in EPSILONS.items()
        for epsilon in epsilons
        for path in expand(
            pattern, attack=attack, epsilon=epsilon, allow_missing=True, **axes
        )
    ]


ITERATIONS = config["iterations"]
ADAPTIVE = config["adaptive"]
TRANSFER = config["transfer"]
ADAPTIVE_IMAGES = min(ADAPTIVE["num_images"], config["dataset"]["eval_size"])
ADAPTIVE_EPSILONS = [
    layout.num(e) for e in sorted(map(float, ADAPTIVE.get("epsilons", [])))
]
ADAPTIVE_SHARDS = list(range(-(-ADAPTIVE_IMAGES // SHARD_SIZE)))
ADAPTIVE_SIGMAS = [layout.num(s) for s in ADAPTIVE.get("sigmas", SIGMAS)]


def get_unaware_sets(wildcards):
    """The unaware PGD shards holding the adaptive attack's images, at each epsilon."""
    return expand(
        layout.ADVERSARIAL,
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        epsilon=ADAPTIVE_EPSILONS,
        shard=ADAPTIVE_SHARDS,
    )


def get_transfer_inputs(wildcards):
    """The source's adversarial shards at each epsilon, its denoised shards at each (sigma,
    epsilon), and every classifier (in config order: the table's targets)."""
    where = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        epsilon=EPSILONS[wildcards.attack],
        shard=SHARDS,
    )
    return {
        "adversarial": expand(layout.ADVERSARIAL, **where),
        "denoised": expand(
            layout.DENOISED, sigma=SIGMAS, denoiser=wildcards.denoiser, **where
        ),
        "classifiers": expand(
            layout.CLASSIFIER, dataset=DATASET, classifier=CLASSIFIERS
        ),
    }


PURIFICATION = config["purification"]
PURIFICATION_IMAGES = min(PURIFICATION["num_images"], config["dataset"]["eval_size"])
PURIFICATION_SHARDS = list(range(-(-PURIFICATION_IMAGES // SHARD_SIZE)))
PURIFICATION_CLASSIFIERS = PURIFICATION["classifiers"] or CLASSIFIERS
# certification's settings there: certify's, with the section's own n0 and n where given
PURIFICATION_CERTIFY = {
    **CERTIFY_SETTINGS,
    **{k: PURIFICATION[k] for k in ("n0", "n") if PURIFICATION.get(k) is not None},
}
PURIFICATION_SIGMAS = [
    layout.num(s) for s in PURIFICATION["sigmas"] or config["sigmas"]
]


def get_purification_inputs(wildcards):
    """The section's classifiers (in its order) and their unaware PGD shards at its epsilon."""
    return {
        "classifiers": expand(
            layout.CLASSIFIER, dataset=DATASET, classifier=PURIFICATION_CLASSIFIERS
        ),
        "unaware": expand(
            layout.ADVERSARIAL,
            dataset=DATASET,
            classifier=PURIFICATION_CLASSIFIERS,
            attack=PURIFICATION["attack"],
            epsilon=layout.num(PURIFICATION["epsilon"]),
            shard=PURIFICATION_SHARDS,
        ),
    }


ATTENTION = config["attention"]
ATTENTION_EPSILONS = [
    layout.num(e) for e in sorted(map(float, ATTENTION.get("epsilons", [])))
]
ATTENTION_SIGMAS = [layout.num(s) for s in ATTENTION.get("sigmas", SIGMAS)]
ATTENTION_IMAGES = min(ATTENTION["num_images"], config["dataset"]["eval_size"])
ATTENTION_SHARDS = list(range(-(-ATTENTION_IMAGES // SHARD_SIZE)))


def get_attention_inputs(wildcards):
    """Shards holding the mapped images: adversarial at epsilon 0 (clean) and each epsilon;
    denoised at each sigma of each of those."""
    where = dict(
        dataset=DATASET,
        classifier=wildcards.classifier,
        attack=wildcards.attack,
        epsilon=["0.0", *ATTENTION_EPSILONS],
        shard=ATTENTION_SHARDS,
    )
    return {
        "classifier": layout.fill(
            layout.CLASSIFIER, dataset=DATASET, classifier=wildcards.classifier
        ),
        "adversarial": expand(layout.ADVERSARIAL, **where),
        "denoised": expand(
            layout.DENOISED,
            sigma=ATTENTION_SIGMAS,
            denoiser=wildcards.denoiser,
            **where,
        ),
    }


def section_attack(section):
    """The attack a sweep section (iterations, adaptive, attention) runs on, if enabled."""
    return [config[section]["attack"]] if config[section]["enabled"] else []


# the report's table of time and memory per stage: rule -> the benchmark pattern of its jobs,
# the axes they span (see all_outputs) and whether its section is enabled; filled by a
# report_benchmarks call right after each rule with a benchmark directive
STAGES = {}


def report_benchmarks(stage, pattern, enabled=True, **axes):
    """Register the jobs of rule `stage` (one per concrete path of `pattern`, its main output,
    over `axes`) in the report's table of time and memory per stage."""
    if stage in STAGES:
        raise ValueError(f"report_benchmarks: {stage} is registered twice")
    STAGES[stage] = (layout.benchmark(pattern), axes, enabled)


def check_benchmarks():
    """Once all rules are defined: every registered stage is a rule with that benchmark, and
    every rule with a benchmark directive is registered (a rule making another rule's outputs,
    e.g. pretrained_classifier for train_classifier, counts in that rule's stage), so the
    report's list of stages cannot drift from the rules."""
    benchmarks = {
        r.name: strip_wildcard_constraints(str(r.benchmark))
        for r in workflow.rules
        if r.benchmark
    }
    registered = {stage: pattern for stage, (pattern, _, _) in STAGES.items()}
    wrong = sorted(s for s, b in registered.items() if benchmarks.get(s) != b)
    missing = sorted(r for r, b in benchmarks.items() if b not in registered.values())
    if wrong or missing:
        raise ValueError(
            "the report's stages (report_benchmarks after each rule) do not match the rules' "
            f"benchmark directives: registered without that benchmark: {wrong or 'none'}; "
            f"benchmarked but not registered: {missing or 'none'}"
        )


def get_benchmarks(wildcards):
    """The benchmark file (time, peak memory) of every job before the report, by stage."""
    return {
        stage: all_outputs(pattern, **axes)
        for stage, (pattern, axes, enabled) in STAGES.items()
        if enabled
    }


def get_report_tables(wildcards):
    """The tables and figures of the report's sections, of the sections enabled."""
    tables = {}
    if CERTIFY["enabled"]:
        certified = section_models("certify")
        tables["certified"] = all_outputs(layout.CERTIFIED, **certified)
        tables["certified_png"] = all_outputs(layout.CERTIFIED_PNG, **certified)
    if BLUR["enabled"]:
        tables["blur"] = all_outputs(layout.BLUR_TABLE)
        tables["defences_png"] = layout.fill(layout.DEFENCES_PNG, dataset=DATASET)
    # the attack-strength tables, each with its figure
    for section, table, png in [
        ("iterations", layout.ITERATIONS_TABLE, layout.ITERATIONS_PNG),
        ("adaptive", layout.ADAPTIVE_TABLE, layout.ADAPTIVE_PNG),
        ("transfer", layout.TRANSFER_TABLE, layout.TRANSFER_PNG),
        ("purification", layout.PURIFICATION_TABLE, layout.PURIFICATION_PNG),
    ]:
        if config[section]["enabled"]:
            tables[f"{section}_table"] = layout.fill(table, dataset=DATASET)
            tables[f"{section}_png"] = layout.fill(png, dataset=DATASET)
    if ATTENTION["enabled"]:
        tables["attention_table"] = layout.fill(layout.ATTENTION_TABLE, dataset=DATASET)
        tables["attention_png"] = all_outputs(
            layout.ATTENTION_PNG,
            attacks=section_attack("attention"),
            denoisers=section_denoisers("attention"),
        )
    reference = config["report"].get("reference")
    if reference is not None:
        tables["reference"] = reference["table"]
    return tables


# the examples figure shows the first classifier and attack of the config, and the first
# denoiser of the accuracy tables that runs with that classifier
FIRST = {
    "classifier": CLASSIFIERS[0],
    "attack": next(iter(config["attacks"])),
    "denoiser": next(d for d in ACCURACY_DENOISERS if paired(CLASSIFIERS[0], d, True)),
}


def get_example_inputs(wildcards):
    """Shard 0 clean, attacked at the largest epsilon, and denoised at each sigma."""
    where = dict(dataset=DATASET, shard=0, **FIRST)
    largest = EPSILONS[FIRST["attack"]][-1]
    return {
        "clean": layout.fill(layout.ADVERSARIAL, epsilon=0.0, **where),
        "adversarial": layout.fill(layout.ADVERSARIAL, epsilon=float(largest), **where),
        "denoised": expand(layout.DENOISED, epsilon=largest, sigma=SIGMAS, **where),
    }


def get_final_output():
    outputs = [layout.fill(layout.REPORT, dataset=DATASET)]
    outputs += all_outputs(
        layout.TABLE_TEX, denoisers=ACCURACY_DENOISERS, every_classifier=True
    )
    if CERTIFY["enabled"]:
        outputs += all_outputs(layout.CERTIFIED_TEX, **section_models("certify"))
    if BLUR["enabled"]:
        outputs += all_outputs(layout.BLUR_TEX)
    for section, tex in [
        ("adaptive", layout.ADAPTIVE_TEX),
        ("purification", layout.PURIFICATION_TEX),
    ]:
        if config[section]["enabled"]:
            outputs.append(layout.fill(tex, dataset=DATASET))
    return outputs


# warn before any job when a PGD step budget cannot reach its epsilon (e.g. the
# Safeguarding Attention paper's 5 steps of 2/255 reach at most 0.039)
for line in dds.attacks.budget.budget_warnings(config["attacks"]):
    logger.warning(f"warning: {line}")
