"""Rules between the denoisers and the sections that use them, and the report's headline radius,
which the config's schema cannot express; and the error every config check raises."""


class ConfigError(ValueError):
    """The config has a value that dds cannot run with."""


def _known(key: str, names, allowed, what: str) -> None:
    for name in names:
        if name not in allowed:
            listed = ", ".join(map(str, allowed))
            raise ConfigError(f"config key '{key}': {name!r} is not one of the config's {what} ({listed})")


def check_denoisers(config: dict) -> None:
    """A calibrated denoiser fine-tunes a one-shot denoiser of the config (no cycle of bases) for a
    classifier of it; a multistep one runs the chain with the network of a denoiser that is not multistep."""
    denoisers = config["denoisers"]
    for name, spec in denoisers.items():
        key = f"denoisers.{name}"
        if spec["kind"] == "calibrated":
            _known(f"{key}.classifier", [spec["classifier"]], config["classifiers"], "classifiers")
        if spec["kind"] not in ("calibrated", "multistep"):
            continue
        _known(f"{key}.base", [spec["base"]], denoisers, "denoisers")
        if denoisers[spec["base"]]["kind"] == "multistep":
            raise ConfigError(
                f"config key '{key}.base': {spec['base']!r} is a multistep denoiser; the base must be a denoiser "
                "whose network gives the one-shot estimate (kind ddpm, openai or calibrated)"
            )
        if spec["kind"] == "multistep":
            _known(f"{key}.classifiers", spec["classifiers"] or [], config["classifiers"], "classifiers")
            if spec["sampler"] == "ddpm" and spec["eta"] != 0:
                raise ConfigError(f"config key '{key}.eta': eta is DDIM's noise scale; the ddpm sampler has none")
    for name in denoisers:
        chain = [name]
        while denoisers[chain[-1]]["kind"] == "calibrated" and denoisers[chain[-1]]["base"] not in chain:
            chain.append(denoisers[chain[-1]]["base"])
        if denoisers[chain[-1]]["kind"] == "calibrated":
            cycle = " -> ".join([*chain, denoisers[chain[-1]]["base"]])
            raise ConfigError(
                f"config key 'denoisers.{name}.base': the bases form a cycle ({cycle}); one must be a ddpm or "
                "openai denoiser"
            )
    _check_max_sigma(config)


def _root(denoisers: dict, name: str) -> str:
    """The denoiser whose network `name` runs: itself, or the end of its chain of bases."""
    while denoisers[name]["kind"] in ("calibrated", "multistep"):
        name = denoisers[name]["base"]
    return name


def _check_max_sigma(config: dict) -> None:
    """A DDPM trained up to t*(max_sigma) only runs at sigmas up to max_sigma: the workflow's, and
    those of the denoisers calibrated on its network."""
    denoisers = config["denoisers"]
    for name, spec in denoisers.items():
        if spec["kind"] != "ddpm" or spec["max_sigma"] is None:
            continue
        used = [*config["sigmas"]]
        for other, theirs in denoisers.items():
            if theirs["kind"] == "calibrated" and _root(denoisers, other) == name:
                used += theirs["sigmas"] or []
        if max(used) > spec["max_sigma"]:
            raise ConfigError(
                f"config key 'denoisers.{name}.max_sigma': {spec['max_sigma']:g} is below sigma {max(used):g}, at "
                f"which it denoises, but it is trained on the timesteps up to sigma {spec['max_sigma']:g} only. To "
                f"fix: set max_sigma to at least {max(used):g}, or null to train on every timestep"
            )


def check_purification(config: dict) -> None:
    """The sections' denoiser lists name denoisers of the config; the purification section compares
    denoisers and classifiers of the config at its sigmas, on the examples of one of its PGD attacks."""
    for section in ("accuracy", "certify", "iterations", "adaptive", "transfer", "attention"):
        _known(f"{section}.denoisers", config[section]["denoisers"] or [], config["denoisers"], "denoisers")
    for section in ("certify", "iterations", "adaptive"):
        _known(f"{section}.classifiers", config[section]["classifiers"] or [], config["classifiers"], "classifiers")
    certified = config["certify"]["denoisers"] or list(config["denoisers"])
    adversarial = config["certify"]["adversarial_denoisers"] or []
    _known("certify.adversarial_denoisers", adversarial, certified, "certified denoisers (certify.denoisers)")
    spec = config["purification"]
    if not spec["enabled"]:
        return
    missing = [k for k in ("denoisers", "attack", "epsilon") if k not in spec]
    if missing:
        raise ConfigError(f"config key 'purification': purification is enabled but {missing} not given")
    _known("purification.denoisers", spec["denoisers"], config["denoisers"], "denoisers")
    _known("purification.classifiers", spec["classifiers"] or [], config["classifiers"], "classifiers")
    _known("purification.sigmas", spec["sigmas"] or [], config["sigmas"], "sigmas")
    _known("purification.attack", [spec["attack"]], config["attacks"], "attacks")
    attack = config["attacks"][spec["attack"]]
    if "steps" not in attack:
        raise ConfigError(f"config key 'purification.attack': {spec['attack']!r} is not a PGD attack (no steps)")
    if spec["epsilon"] not in attack["epsilons"]:
        raise ConfigError(
            f"config key 'purification.epsilon': {spec['epsilon']} is not among the epsilons of attack "
            f"'{spec['attack']}' ({attack['epsilons']}); purification compares with that attack's examples"
        )


def check_headline(config: dict) -> None:
    """The report summary's certified radius is one that certification reports."""
    radius, radii = config["report"]["headline_radius"], config["certify"]["radii"]
    if config["certify"]["enabled"] and radius not in radii:
        raise ConfigError(
            f"config key 'report.headline_radius': {radius} is not among certify.radii ({radii}); the summary "
            "shows certified accuracy at one of them"
        )
