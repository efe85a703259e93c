"""Validation of the workflow config against its JSON schema, with errors that name the
key, the value and what is allowed, and the schema's defaults filled in."""

import copy
from pathlib import Path

import jsonschema
import yaml

from .budget import ITERATIVE, NORMS


class ConfigError(ValueError):
    """The config has a value that dds cannot run with."""


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


def _check_consistency(config: dict) -> None:
    """Rules the schema cannot express."""
    for name, attack in config["attacks"].items():
        key = f"config key 'attacks.{name}'"
        if NORMS[attack["method"]] == "linf" and max(attack["epsilons"]) > 1:
            raise ConfigError(f"{key}: epsilon {max(attack['epsilons'])} is above 1, the whole [0,1] pixel range of "
                              f"the L-inf attack {attack['method']}")
        if attack["method"] not in ITERATIVE:
            given = sorted({"steps", "step_size"} & set(attack))
            given += ["random_start"] if attack["random_start"] else []
            if given:
                raise ConfigError(f"{key}: {given} only apply to PGD (pgd_linf, pgd_l2), not to {attack['method']}")
            continue
        if "steps" not in attack or "step_size" not in attack:
            raise ConfigError(f"{key}: PGD needs 'steps' (iterations) and 'step_size' (with step_mode absolute, "
                              "the step, e.g. 0.00784 = 2/255; with step_mode relative, step = step_size * epsilon / steps)")
    for eps in config["certify"]["epsilons"]:
        for name, attack in config["attacks"].items():
            if eps != 0 and eps not in attack["epsilons"]:
                raise ConfigError(f"config key 'certify.epsilons': {eps} is not among the epsilons of attack "
                                  f"'{name}' ({attack['epsilons']}); certify only sets the attacks make")
    for section in ("iterations", "adaptive"):
        spec = config[section]
        if not spec["enabled"]:
            continue
        key = f"config key '{section}.attack'"
        missing = [k for k in ("attack", "epsilon" if section == "iterations" else "epsilons") if k not in spec]
        if missing:
            raise ConfigError(f"config key '{section}': {section} is enabled but {missing} not given")
        if spec["attack"] not in config["attacks"]:
            raise ConfigError(f"{key}: {spec['attack']!r} is not an attack of this config ({', '.join(config['attacks'])})")
        method = config["attacks"][spec["attack"]]["method"]
        if method not in ITERATIVE:
            raise ConfigError(f"{key}: {spec['attack']!r} is {method}; {section} needs a PGD attack (pgd_linf, pgd_l2)")
    adaptive = config["adaptive"]
    if adaptive["enabled"]:
        allowed = config["attacks"][adaptive["attack"]]["epsilons"]
        for eps in adaptive["epsilons"]:
            if eps not in allowed:
                raise ConfigError(f"config key 'adaptive.epsilons': {eps} is not among the epsilons of attack "
                                  f"'{adaptive['attack']}' ({allowed}); the adaptive attack is compared with it")
