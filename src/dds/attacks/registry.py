"""The attack methods dds knows, in one table: the norm of each method's epsilon ball, whether
it iterates (PGD: steps, step_size, step_mode, random_start; the step of a spec is step_size()),
and how torchattacks builds it. Torch-free at import, so that the config checks read it before any job runs."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    norm: str  # "linf" or "l2": the norm the perturbation is bounded in
    iterative: bool
    build: Callable  # (model, spec, epsilon, num_classes) -> a torchattacks attack


def step_size(spec: dict, epsilon: float) -> float:
    """The PGD step: `step_size` itself when `step_mode` is absolute (e.g. 2/255 as in the
    Safeguarding Attention paper), `step_size * epsilon / steps` when relative (so that every
    epsilon is reachable)."""
    if spec.get("step_mode", "absolute") == "absolute":
        return float(spec["step_size"])
    return float(spec["step_size"]) * epsilon / spec["steps"]


def _pgd(model, spec: dict, epsilon: float, num_classes: int):
    # projection to the ball and to [0,1] after every step
    import torchattacks

    make = torchattacks.PGD if METHODS[spec["method"]].norm == "linf" else torchattacks.PGDL2
    return make(
        model,
        eps=epsilon,
        alpha=step_size(spec, epsilon),
        steps=spec["steps"],
        random_start=spec.get("random_start", False),
    )


def _fgsm(model, spec: dict, epsilon: float, num_classes: int):
    import torchattacks

    return torchattacks.FGSM(model, eps=epsilon)


def _autoattack(model, spec: dict, epsilon: float, num_classes: int):
    import torchattacks

    # the standard version: APGD-CE, APGD-T, FAB-T, Square, each only on still-correct images
    norm = {"linf": "Linf", "l2": "L2"}[METHODS[spec["method"]].norm]
    return torchattacks.AutoAttack(model, norm=norm, eps=epsilon, version="standard", n_classes=num_classes, seed=0)


METHODS = {
    "pgd_linf": Method("linf", True, _pgd),
    "pgd_l2": Method("l2", True, _pgd),
    "fgsm": Method("linf", False, _fgsm),
    "autoattack_linf": Method("linf", False, _autoattack),
    "autoattack_l2": Method("l2", False, _autoattack),
}
ITERATIVE = tuple(name for name, m in METHODS.items() if m.iterative)


def method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown attack method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build(model, spec: dict, epsilon: float, num_classes: int):
    """The torchattacks attack of `spec["method"]` against `model` at radius `epsilon`."""
    return method(spec["method"]).build(model, spec, epsilon, num_classes)
