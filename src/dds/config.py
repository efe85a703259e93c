"""Validation of the workflow config against its JSON schema, with errors that name the
key, the value and what is allowed, and the schema's defaults filled in."""

import copy
import math
import re
from pathlib import Path

import jsonschema
import yaml

from dds.attacks.registry import ITERATIVE, METHODS
from dds.config_rules import ConfigError, check_denoisers, check_headline, check_purification
from dds.diffusion.checkpoints import CHECKPOINTS, FlagError, OpenAICheckpoint
from dds.diffusion.flags import denoiser_checkpoint


def _with_defaults(validator_class):
    """A validator that fills each property's `default` before checking (the jsonschema FAQ recipe)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _key(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _allowed(error) -> str:
    sub = error.schema
    if "enum" in sub:
        return "allowed: " + ", ".join(map(repr, sub["enum"]))
    return sub.get("description", "")


def validate(config: dict, schema_path) -> dict:
    """Check `config` against the schema, fill defaults in place, and return it.

    Raises ConfigError listing every problem as `key: message (what is allowed)`.
    """
    _check_finite(config, [])
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            hint = _allowed(err)
            lines.append(f"  config key '{_key(err.absolute_path)}': {err.message}" + (f" ({hint})" if hint else ""))
        raise ConfigError("invalid config:\n" + "\n".join(lines))
    _check_consistency(config)
    return config


def _check_finite(value, path) -> None:
    """No NaN or infinity anywhere (YAML's .nan and .inf are numbers to the schema)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key(path)}': {value} is not a finite number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        _check_finite(item, [*path, key])


# keys of `dataset` that only one dataset uses, and their defaults there (None: no default)
DATASET_KEYS = {
    "cifar10": {"root": "data", "download": False, "md5": None},
    "imagenet": {"root": None, "labels_file": None, "require_all_classes": True},
}
CIFAR10_SIZE = 32


def _check_dataset(config: dict) -> None:
    """Fill the defaults of the chosen dataset's own keys; refuse the keys of other datasets."""
    spec = config["dataset"]
    own = DATASET_KEYS.get(spec["name"], {})
    foreign = sorted({k for keys in DATASET_KEYS.values() for k in keys} - set(own))
    for key in foreign:
        if key in spec:
            users = [name for name, keys in DATASET_KEYS.items() if key in keys]
            raise ConfigError(
                f"config key 'dataset.{key}': applies to dataset {' and '.join(users)} only, "
                f"not to {spec['name']}; remove it"
            )
    for key, default in own.items():
        if default is not None:
            spec.setdefault(key, default)
    if spec["name"] == "imagenet" and "root" not in spec:
        raise ConfigError(
            "config key 'dataset.root': imagenet needs the folder of the validation images "
            "(class folders, or the flat official layout with labels_file)"
        )
    if spec["name"] == "cifar10" and spec["image_size"] != CIFAR10_SIZE:
        raise ConfigError(
            f"config key 'dataset.image_size': CIFAR-10 images are {CIFAR10_SIZE}x{CIFAR10_SIZE}, "
            f"not {spec['image_size']}; to feed a classifier larger images, give it "
            "resize: {size: 224, mode: bilinear}"
        )


def _check_models(config: dict) -> None:
    """Pretrained classifiers and diffusion checkpoints fit the dataset."""
    dataset = config["dataset"]
    for name, spec in config["classifiers"].items():
        key = f"config key 'classifiers.{name}"
        if "weights" in spec and not spec["pretrained"]:
            raise ConfigError(
                f"{key}.weights': pretrained weights for a classifier the workflow trains; "
                "set pretrained: true to use them, or remove weights"
            )
        if spec["pretrained"] and dataset["name"] != "imagenet":
            raise ConfigError(
                f"{key}.pretrained': timm's pretrained heads predict the 1000 ImageNet-1k classes; "
                f"dataset {dataset['name']!r} has other labels: train the classifier instead"
            )
    check_denoisers(config)
    downloads = {}  # checkpoint name -> the first denoiser downloading it, its source and architecture
    for name, spec in config["denoisers"].items():
        if spec["kind"] != "openai":
            continue
        official = _check_openai(name, spec, dataset["image_size"])
        if "path" in spec:
            continue
        source = (official, spec["sha256"])  # official holds the url
        first, theirs = downloads.setdefault(spec["checkpoint"], (name, source))
        if theirs != source:  # one file, data/checkpoints/<name>.pt
            raise ConfigError(
                f"config key 'denoisers.{name}': checkpoint {spec['checkpoint']} is downloaded for denoisers.{first} "
                "with another url, sha256 or flags; one checkpoint file has one source and one architecture "
                "(or give one of them a `path`)"
            )


# a checkpoint's name is a file name: data/checkpoints/<name>.pt
CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_openai(name: str, spec: dict, image_size: int) -> OpenAICheckpoint:
    """The checkpoint of an openai denoiser: its flags describe a UNet and a diffusion (a known
    checkpoint's values as defaults, or all required flags for a model of one's own) at the
    dataset's image size, and its file comes from a path or a url."""
    key = f"config key 'denoisers.{name}"
    checkpoint = spec["checkpoint"]
    if checkpoint not in CHECKPOINTS and not CHECKPOINT_NAME.fullmatch(checkpoint):
        raise ConfigError(
            f"{key}.checkpoint': {checkpoint!r} is not an OpenAI checkpoint dds knows ({', '.join(CHECKPOINTS)}), "
            "nor a name for a model of your own (letters, digits, '.', '_' and '-': it names the file "
            "data/checkpoints/<name>.pt)"
        )
    try:
        official = denoiser_checkpoint(spec)
    except FlagError as err:
        raise ConfigError(f"{key}.{err.flag}': {err} (see docs/presets.md, 'Your own diffusion model')") from None
    size = official.unet.image_size
    if size != image_size:
        raise ConfigError(
            f"{key}.{'image_size' if 'image_size' in spec else 'checkpoint'}': {checkpoint} denoises {size}x{size} "
            f"images but dataset.image_size is {image_size}; set dataset.image_size: {size}"
        )
    if "url" not in spec and "path" not in spec:
        where = (
            f"`url: {CHECKPOINTS[checkpoint].url}` for the fetch_denoiser rule to download it"
            if checkpoint in CHECKPOINTS
            else "`url:` to download it from (http, https or file)"
        )
        raise ConfigError(
            f"{key}': neither url nor path for checkpoint {checkpoint}; give `path:` to the checkpoint file you "
            f"have (a state dict saved by torch.save, e.g. the ema_*.pt of a training run), or {where}"
        )
    return official


def _check_reference(config: dict) -> None:
    """The published table names classifiers, an attack and a denoiser of this config."""
    reference = config["report"].get("reference")
    if reference is None:
        return
    for ours in reference["classifiers"]:
        if ours not in config["classifiers"]:
            raise ConfigError(
                f"config key 'report.reference.classifiers': {ours!r} is not a classifier of this "
                f"config ({', '.join(config['classifiers'])})"
            )
    for section in ("attack", "denoiser"):
        names = config[f"{section}s"]
        reference.setdefault(section, next(iter(names)))
        if reference[section] not in names:
            raise ConfigError(
                f"config key 'report.reference.{section}': {reference[section]!r} is not "
                f"among this config's {section}s ({', '.join(names)})"
            )


def _check_consistency(config: dict) -> None:
    """Rules the schema cannot express."""
    _check_dataset(config)
    _check_models(config)
    _check_reference(config)
    for name, attack in config["attacks"].items():
        key = f"config key 'attacks.{name}'"
        if attack["method"] not in METHODS:
            raise ConfigError(
                f"config key 'attacks.{name}.method': {attack['method']!r} is not an attack method dds "
                f"knows; allowed: {', '.join(METHODS)}"
            )
        if METHODS[attack["method"]].norm == "linf" and max(attack["epsilons"]) > 1:
            raise ConfigError(
                f"{key}: epsilon {max(attack['epsilons'])} is above 1, the whole [0,1] pixel range of "
                f"the L-inf attack {attack['method']}"
            )
        if not METHODS[attack["method"]].iterative:
            given = sorted({"steps", "step_size"} & set(attack))
            given += ["random_start"] if attack["random_start"] else []
            if given:
                raise ConfigError(
                    f"{key}: {given} only apply to PGD ({', '.join(ITERATIVE)}), not to {attack['method']}"
                )
            continue
        if "steps" not in attack or "step_size" not in attack:
            raise ConfigError(
                f"{key}: PGD needs 'steps' (iterations) and 'step_size' (with step_mode absolute, "
                "the step, e.g. 0.00784 = 2/255; with step_mode relative, "
                "step = step_size * epsilon / steps)"
            )
    for eps in config["certify"]["epsilons"]:
        for name, attack in config["attacks"].items():
            if eps != 0 and eps not in attack["epsilons"]:
                raise ConfigError(
                    f"config key 'certify.epsilons': {eps} is not among the epsilons of attack "
                    f"'{name}' ({attack['epsilons']}); certify only sets the attacks make"
                )
    for section in ("iterations", "adaptive", "attention"):
        spec = config[section]
        if not spec["enabled"]:
            continue
        key = f"config key '{section}.attack'"
        missing = [k for k in ("attack", "epsilon" if section == "iterations" else "epsilons") if k not in spec]
        if missing:
            raise ConfigError(f"config key '{section}': {section} is enabled but {missing} not given")
        if spec["attack"] not in config["attacks"]:
            raise ConfigError(
                f"{key}: {spec['attack']!r} is not an attack of this config ({', '.join(config['attacks'])})"
            )
        method = config["attacks"][spec["attack"]]["method"]
        if method not in ITERATIVE:
            raise ConfigError(
                f"{key}: {spec['attack']!r} is {method}; {section} needs a PGD attack ({', '.join(ITERATIVE)})"
            )
    for section in ("adaptive", "attention"):  # both compare with the attack's own sets
        spec = config[section]
        if spec["enabled"]:
            allowed = config["attacks"][spec["attack"]]["epsilons"]
            for eps in spec["epsilons"]:
                if eps not in allowed:
                    raise ConfigError(
                        f"config key '{section}.epsilons': {eps} is not among the epsilons of attack "
                        f"'{spec['attack']}' ({allowed}); {section} uses that attack's examples"
                    )
    for section in ("adaptive", "attention"):
        for sigma in config[section].get("sigmas", []) if config[section]["enabled"] else []:
            if sigma not in config["sigmas"]:
                raise ConfigError(
                    f"config key '{section}.sigmas': {sigma} is not among the config's sigmas ({config['sigmas']})"
                )
    check_purification(config)
    check_headline(config)
