"""The workflow config schema and dds.config.validate: defaults, and errors naming the key; where
the output paths lie (dds.layout), and what a retried job asks for (dds.retries)."""

import copy
from pathlib import Path

import pytest
import yaml

from dds.config import ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = REPO / "config.yaml"


@pytest.fixture(scope="module")
def shipped():
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def config(shipped):
    return copy.deepcopy(shipped)


def check(config):
    return validate(config, SCHEMA)


def test_shipped_config_validates_and_gets_defaults(config, shipped):
    out = check(config)
    assert out is config
    resnet = config["classifiers"]["resnet"]
    assert "batch_size" not in shipped["classifiers"]["resnet"]
    assert resnet == {
        "kwargs": {},
        "epochs": 8,
        "batch_size": 64,
        "lr": 0.002,
        "weight_decay": 0.05,
        "augment": False,
        "pretrained": False,
        **shipped["classifiers"]["resnet"],
    }
    assert changed(config, shipped) == []  # given values are kept


def changed(out, given, where="") -> list[str]:
    """The keys of `given` whose value `out` does not hold at the same place (`out` may hold more)."""
    if isinstance(given, dict) and isinstance(out, dict):
        return [key for k, v in given.items() for key in changed(out.get(k), v, f"{where}.{k}".lstrip("."))]
    return [] if out == given else [where]


def test_defaults_fill_removed_keys(config):
    for key in ("batch_size", "report"):
        del config[key]
    config["dataset"] = {"name": "digits"}
    config["denoisers"] = {"small": {}}
    for section in ("accuracy", "certify", "iterations", "adaptive", "transfer", "attention"):
        del config[section]["denoisers"]
    for section in ("certify", "iterations", "adaptive"):
        del config[section]["classifiers"]
    del config["certify"]["adversarial_denoisers"]
    del config["purification"]
    del config["attacks"]["pgd"]["random_start"]
    check(config)
    assert config["certify"]["denoisers"] is None and config["purification"]["enabled"] is False
    assert config["certify"]["adversarial_denoisers"] is None
    assert config["accuracy"]["denoisers"] is None and config["adaptive"]["classifiers"] is None
    assert config["batch_size"] == 256
    assert config["report"] == {"examples": 6, "headline_radius": 0.5}
    assert config["dataset"] == {"name": "digits", "image_size": 16, "eval_size": 300, "shard_size": 300}
    small = config["denoisers"]["small"]
    assert small["block_out_channels"] == [32, 64, 64] and small["attention_levels"] == [2]
    assert small["num_train_timesteps"] == 1000 and small["beta_schedule"] == "linear"
    assert small["max_sigma"] is None
    assert config["attacks"]["pgd"]["random_start"] is False


def set_key(path, value):
    def mutate(c):
        *parents, last = path
        for p in parents:
            c = c[p]
        c[last] = value

    return mutate


def delete_key(path):
    def mutate(c):
        *parents, last = path
        for p in parents:
            c = c[p]
        del c[last]

    return mutate


def add_classifier(name):
    return set_key(["classifiers", name], {"model": "resnet18"})


BAD = {
    "unknown top-level key": (set_key(["colour"], "blue"), ["colour"]),
    "unknown nested key": (set_key(["classifiers", "resnet", "epoch"], 3), ["classifiers.resnet", "epoch"]),
    "missing required key": (delete_key(["sigmas"]), ["sigmas"]),
    "negative sigma": (set_key(["sigmas"], [0.25, -0.5]), ["'sigmas[1]'"]),
    "sigma zero": (set_key(["sigmas"], [0.0, 0.5]), ["'sigmas[0]'"]),
    "sigma too large": (set_key(["sigmas"], [11]), ["'sigmas[0]'"]),
    "sigma string": (set_key(["sigmas"], ["0.5"]), ["'sigmas[0]'"]),
    "duplicate sigmas": (set_key(["sigmas"], [0.25, 0.5, 0.25]), ["'sigmas'", "non-unique"]),
    "empty sigmas": (set_key(["sigmas"], []), ["'sigmas'"]),
    "epsilon above 1": (set_key(["attacks", "pgd", "epsilons"], [0.1, 1.5]), ["'attacks.pgd'", "1.5", "above 1"]),
    "negative epsilon": (set_key(["attacks", "pgd", "epsilons"], [-0.1]), ["'attacks.pgd.epsilons[0]'"]),
    "duplicate epsilons": (set_key(["attacks", "pgd", "epsilons"], [0.1, 0.1]), ["'attacks.pgd.epsilons'"]),
    "seed string": (set_key(["seed"], "zero"), ["'seed'", "integer"]),
    "negative seed": (set_key(["seed"], -1), ["'seed'"]),
    "seed float": (set_key(["seed"], 1.5), ["'seed'"]),
    "unknown dataset": (set_key(["dataset", "name"], "mnist"), ["'dataset.name'", "'digits'"]),
    "eval_size zero": (set_key(["dataset", "eval_size"], 0), ["'dataset.eval_size'"]),
    "unknown attack method": (set_key(["attacks", "pgd", "method"], "cw_l2"), ["'attacks.pgd.method'", "pgd_linf"]),
    "zero steps": (set_key(["attacks", "pgd", "steps"], 0), ["'attacks.pgd.steps'"]),
    "classifier name with slash": (add_classifier("res/net"), ["res/net"]),
    "classifier name with space": (add_classifier("res net"), ["res net"]),
    "classifier name with dot": (add_classifier("../up"), ["../up"]),
    "attack name with slash": (
        set_key(["attacks", "a/b"], {"method": "pgd_linf", "epsilons": [0.1], "steps": 1, "step_size": 0.1}),
        ["a/b"],
    ),
    "classifier without model": (set_key(["classifiers", "resnet"], {"epochs": 2}), ["'classifiers.resnet'", "model"]),
    "bad device": (set_key(["device"], "gpu"), ["'device'"]),
    "bad cuda index": (set_key(["device"], "cuda:x"), ["'device'"]),
    "device with space": (set_key(["device"], "cuda "), ["'device'"]),
    "unknown beta schedule": (
        set_key(["denoisers", "ddpm", "beta_schedule"], "cosine"),
        ["'denoisers.ddpm.beta_schedule'", "squaredcos_cap_v2"],
    ),
    "unknown step mode": (
        set_key(["attacks", "pgd", "step_mode"], "fraction"),
        ["'attacks.pgd.step_mode'", "'relative'"],
    ),
    "PGD without step size": (delete_key(["attacks", "pgd", "step_size"]), ["attacks.pgd", "'step_size'"]),
    "PGD without steps": (delete_key(["attacks", "pgd", "steps"]), ["attacks.pgd", "'steps'"]),
    "steps given to FGSM": (set_key(["attacks", "pgd", "method"], "fgsm"), ["attacks.pgd", "only apply to PGD"]),
    "adaptive attack not in config": (set_key(["adaptive", "attack"], "cw"), ["'adaptive.attack'", "'cw'", "pgd"]),
    "adaptive epsilon not attacked": (set_key(["adaptive", "epsilons"], [0.07]), ["'adaptive.epsilons'", "0.07"]),
    "adaptive unknown target": (set_key(["adaptive", "targets"], ["soft"]), ["'adaptive.targets[0]'", "'smoothed'"]),
    "adaptive zero draws": (set_key(["adaptive", "eot_draws"], 0), ["'adaptive.eot_draws'"]),
    "adaptive on FGSM": (
        lambda c: (
            c["attacks"].update(fg={"method": "fgsm", "epsilons": [0.02, 0.05, 0.1]})
            or set_key(["adaptive", "attack"], "fg")(c)
        ),
        ["'adaptive.attack'", "fgsm", "needs a PGD"],
    ),
    "iterations without epsilon": (delete_key(["iterations", "epsilon"]), ["'iterations'", "epsilon"]),
    "iterations empty steps": (set_key(["iterations", "steps"], []), ["'iterations.steps'"]),
    "iterations duplicate steps": (set_key(["iterations", "steps"], [5, 5]), ["'iterations.steps'"]),
    "transfer unknown key": (set_key(["transfer", "matrix"], True), ["'transfer'", "matrix"]),
    "sigma as text": (set_key(["sigmas"], ["0.25"]), ["'sigmas[0]'"]),
    "infinite sigma": (set_key(["sigmas"], [float("inf")]), ["'sigmas[0]'", "inf", "finite"]),
    "NaN epsilon": (set_key(["attacks", "pgd", "epsilons"], [float("nan")]), ["'attacks.pgd.epsilons[0]'", "finite"]),
    "infinite L2 epsilon": (
        lambda c: c["attacks"]["pgd"].update(method="pgd_l2", epsilons=[float("inf")]),
        ["'attacks.pgd.epsilons[0]'", "finite"],
    ),
    "empty sigma grid": (set_key(["sigmas"], []), ["'sigmas'"]),
    "attention epsilon not attacked": (set_key(["attention", "epsilons"], [0.3]), ["'attention.epsilons'", "0.3"]),
    "attention sigma not in sigmas": (set_key(["attention", "sigmas"], [0.75]), ["'attention.sigmas'", "0.75"]),
    "adaptive sigma not in sigmas": (set_key(["adaptive", "sigmas"], [0.75]), ["'adaptive.sigmas'", "0.75"]),
    "attention on unknown attack": (set_key(["attention", "attack"], "cw"), ["'attention.attack'", "'cw'"]),
    "feature denoising unknown variant": (
        set_key(["classifiers", "resnet", "feature_denoising"], {"variant": "gauss"}),
        ["'classifiers.resnet.feature_denoising.variant'", "'softmax'"],
    ),
    "feature denoising stage 5": (
        set_key(["classifiers", "resnet", "feature_denoising"], {"stages": [5]}),
        ["'classifiers.resnet.feature_denoising.stages[0]'"],
    ),
    "multi-scale p0 below one half": (set_key(["certify", "p0"], 0.4), ["'certify.p0'", "0.4"]),
    "calibrated unknown base": (
        set_key(["denoisers", "ddpm-cal", "base"], "ddpm2"),
        ["'denoisers.ddpm-cal.base'", "'ddpm2'", "ddpm, ddpm-cal"],
    ),
    "calibrated unknown classifier": (
        set_key(["denoisers", "ddpm-cal", "classifier"], "resnet50"),
        ["'denoisers.ddpm-cal.classifier'", "'resnet50'", "resnet, cbam-resnet"],
    ),
    "calibrated on itself": (set_key(["denoisers", "ddpm-cal", "base"], "ddpm-cal"), ["cycle (ddpm-cal -> ddpm-cal)"]),
    "calibrated bases in a cycle": (
        lambda c: (
            c["denoisers"].update(other={"kind": "calibrated", "base": "ddpm-cal", "classifier": "vit"}),
            set_key(["denoisers", "ddpm-cal", "base"], "other")(c),
        ),
        ["'denoisers.ddpm-cal.base'", "cycle (ddpm-cal -> other -> ddpm-cal)"],
    ),
    "calibrated without classifier": (
        lambda c: c["denoisers"]["ddpm-cal"].pop("classifier"),
        ["'denoisers.ddpm-cal'", "'classifier' is a required property"],
    ),
    "calibrated negative steps": (set_key(["denoisers", "ddpm-cal", "steps"], -1), ["'denoisers.ddpm-cal.steps'"]),
    "calibrated unknown key": (set_key(["denoisers", "ddpm-cal", "epochs"], 3), ["'denoisers.ddpm-cal'", "epochs"]),
    "multistep on a multistep base": (
        set_key(["denoisers", "ddim20", "base"], "ddim5"),
        ["'denoisers.ddim20.base'", "'ddim5' is a multistep denoiser"],
    ),
    "multistep unknown base": (set_key(["denoisers", "ddim5", "base"], "ddpm2"), ["'denoisers.ddim5.base'", "'ddpm2'"]),
    "multistep unknown sampler": (
        set_key(["denoisers", "ddim5", "sampler"], "euler"),
        ["'denoisers.ddim5.sampler'", "'ddim', 'ddpm'"],
    ),
    "multistep zero steps": (set_key(["denoisers", "ddim5", "steps"], 0), ["'denoisers.ddim5.steps'"]),
    "multistep ddpm with eta": (
        lambda c: c["denoisers"]["ddim5"].update(sampler="ddpm", eta=0.5),
        ["'denoisers.ddim5.eta'", "ddpm sampler has none"],
    ),
    "multistep unknown classifier": (
        set_key(["denoisers", "ddim5", "classifiers"], ["vit", "vgg"]),
        ["'denoisers.ddim5.classifiers'", "'vgg'"],
    ),
    "calibrated on a multistep base": (
        set_key(["denoisers", "ddpm-cal", "base"], "ddim5"),
        ["'denoisers.ddpm-cal.base'", "multistep"],
    ),
    "section on an unknown denoiser": (
        set_key(["certify", "denoisers"], ["ddpm", "ddim7"]),
        ["'certify.denoisers'", "'ddim7'"],
    ),
    "adversarial certification of a denoiser not certified": (
        lambda c: (
            set_key(["certify", "denoisers"], ["ddpm"])(c),
            set_key(["certify", "adversarial_denoisers"], ["ddpm-cal"])(c),
        ),
        ["'certify.adversarial_denoisers'", "'ddpm-cal'", "certify.denoisers"],
    ),
    "accuracy on an unknown denoiser": (
        set_key(["accuracy", "denoisers"], ["ddpm", "ddim7"]),
        ["'accuracy.denoisers'", "'ddim7'"],
    ),
    "section on an unknown classifier": (
        set_key(["adaptive", "classifiers"], ["vit", "vgg"]),
        ["'adaptive.classifiers'", "'vgg'"],
    ),
    "purification zero draws": (set_key(["purification", "n"], 0), ["'purification.n'"]),
    "ddpm trained below a workflow sigma": (
        set_key(["sigmas"], [0.25, 0.5, 1.0, 1.5]),
        ["'denoisers.ddpm.max_sigma'", "below sigma 1.5", "at least 1.5"],
    ),
    "ddpm trained below a calibration sigma": (
        set_key(["denoisers", "ddpm-cal", "sigmas"], [0.5, 2.0]),
        ["'denoisers.ddpm.max_sigma'", "below sigma 2"],
    ),
    "purification unknown denoiser": (
        set_key(["purification", "denoisers"], ["ddpm", "ddim7"]),
        ["'purification.denoisers'", "'ddim7'"],
    ),
    "purification epsilon not attacked": (
        set_key(["purification", "epsilon"], 0.3),
        ["'purification.epsilon'", "0.3"],
    ),
    "purification sigma not in sigmas": (
        set_key(["purification", "sigmas"], [0.75]),
        ["'purification.sigmas'", "0.75"],
    ),
    "headline radius not certified": (
        set_key(["report", "headline_radius"], 0.3),
        ["'report.headline_radius'", "0.3", "certify.radii"],
    ),
    "purification without attack": (
        lambda c: c["purification"].pop("attack"),
        ["'purification'", "['attack'] not given"],
    ),
    "adversarial fraction above 1": (
        set_key(["classifiers", "resnet", "adversarial_training"], {"fraction": 1.5}),
        ["'classifiers.resnet.adversarial_training.fraction'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_schema_rejects_and_names_the_key(config, case):
    mutate, expected = BAD[case]
    mutate(config)
    with pytest.raises(ConfigError) as info:
        check(config)
    for text in expected:
        assert text in str(info.value), f"{text!r} not in {info.value}"


def test_every_problem_is_listed(config):
    config["seed"] = "zero"
    config["sigmas"] = []
    with pytest.raises(ConfigError) as info:
        check(config)
    assert "'seed'" in str(info.value) and "'sigmas'" in str(info.value)


def without_pgd_sweeps(config):
    for section in ("iterations", "adaptive", "attention", "purification"):
        config[section]["enabled"] = False


GOOD = {
    # the adaptive attack's sigmas must be among them: all of them
    "largest sigma, a DDPM trained on every timestep": lambda c: (
        set_key(["sigmas"], [10])(c),
        set_key(["denoisers", "ddpm", "max_sigma"], None)(c),
        c["adaptive"].pop("sigmas"),
        c["purification"].pop("sigmas"),
    ),
    "integer sigma": lambda c: (
        set_key(["sigmas"], [1])(c),
        c["adaptive"].pop("sigmas"),
        c["purification"].pop("sigmas"),
    ),
    "epsilon bounds": lambda c: (
        set_key(["attacks", "pgd", "epsilons"], [0, 1])(c),
        set_key(["certify", "epsilons"], [1])(c),
        set_key(["adaptive", "epsilons"], [1])(c),
        set_key(["attention", "epsilons"], [1])(c),
        set_key(["purification", "epsilon"], 1)(c),
    ),
    "cuda index": set_key(["device"], "cuda:1"),
    "cpu": set_key(["device"], "cpu"),
    "name with digits and dash": add_classifier("res-net-2"),
    "absolute step": lambda c: c["attacks"]["pgd"].update(step_size=2 / 255, step_mode="absolute"),
    "L2 epsilon above 1": lambda c: (
        c["attacks"]["pgd"].update(method="pgd_l2", epsilons=[0.05, 2.0]),
        set_key(["adaptive", "epsilons"], [2.0])(c),
        set_key(["attention", "epsilons"], [2.0])(c),
        set_key(["purification", "epsilon"], 2.0)(c),
    ),
    "FGSM without steps": lambda c: (
        c.update(attacks={"fgsm": {"method": "fgsm", "epsilons": [0.05]}}),
        without_pgd_sweeps(c),
    ),
    "AutoAttack": lambda c: (
        c.update(attacks={"aa": {"method": "autoattack_linf", "epsilons": [0.05]}}),
        without_pgd_sweeps(c),
    ),
    "adaptive L2 PGD": lambda c: c["attacks"]["pgd"].update(method="pgd_l2"),
    "sweeps off need no attack": lambda c: c.update(
        iterations={"enabled": False}, adaptive={"enabled": False}, attention={"enabled": False}
    ),
    "cosine schedule": set_key(["denoisers", "ddpm", "beta_schedule"], "squaredcos_cap_v2"),
    "calibrated zero steps, own sigmas": lambda c: c["denoisers"]["ddpm-cal"].update(steps=0, sigmas=[0.3]),
    "calibrated on a calibrated base": lambda c: c["denoisers"].update(
        twice={"kind": "calibrated", "base": "ddpm-cal", "classifier": "vit"}
    ),
    "multistep ddpm sampler on a calibrated base, every classifier": lambda c: c["denoisers"].update(
        ancestral={"kind": "multistep", "base": "ddpm-cal", "sampler": "ddpm", "steps": 4}
    ),
    "purification off needs no attack": lambda c: c.update(purification={"enabled": False}),
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_schema_accepts_valid_variants(config, case):
    GOOD[case](config)
    check(config)


def test_certifying_a_set_no_attack_makes_is_refused(config):
    config["certify"]["epsilons"] = [0.123]
    with pytest.raises(ConfigError, match=r"certify\.epsilons.*0\.123.*pgd"):
        check(config)


def test_outputs_stay_under_results_or_the_checkpoint_folder(shipped):
    """Every output path pattern lies under results/<dataset>/ (or, for downloaded official
    checkpoints, data/checkpoints/), and the names that fill the patterns cannot climb out."""
    from dds import layout

    patterns = {k: v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "{" in v}
    assert len(patterns) > 20
    for name, pattern in patterns.items():
        assert pattern == layout.ROOT or pattern.startswith((layout.ROOT + "/", "data/checkpoints/")), name
        assert ".." not in pattern and not pattern.startswith("/"), name
    for key in ("classifiers", "denoisers", "attacks"):
        config = copy.deepcopy(shipped)
        config[key]["../../etc"] = next(iter(config[key].values()))
        with pytest.raises(ConfigError, match=r"\.\./\.\./etc"):
            check(config)
    # the one path part that is not a name: the official checkpoint, one of a known list
    config = copy.deepcopy(shipped)
    config["denoisers"] = {"official": {"kind": "openai", "checkpoint": "../../etc/x", "url": "https://example.org/x"}}
    with pytest.raises(ConfigError, match=r"'\.\./\.\./etc/x' is not an OpenAI checkpoint dds knows"):
        check(config)


def test_a_retried_job_asks_for_more_memory_and_time():
    from dds.retries import grows_with_attempt

    mem = grows_with_attempt(2000)
    assert [mem(None, attempt) for attempt in (1, 2, 3)] == [2000, 4000, 6000]
