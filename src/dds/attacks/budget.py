"""What an attack configuration can reach, without importing torch: the Snakefile checks
every attack's step budget against its epsilons before any job runs."""

# the norm each attack method bounds its perturbation in
NORMS = {"pgd_linf": "linf", "pgd_l2": "l2", "fgsm": "linf", "autoattack_linf": "linf", "autoattack_l2": "l2"}
ITERATIVE = {"pgd_linf", "pgd_l2"}


def step_size(spec: dict, epsilon: float) -> float:
    """The PGD step: `step_size` itself when `step_mode` is absolute (e.g. 2/255 as in the
    Safeguarding Attention paper), `step_size * epsilon / steps` when relative (so that every
    epsilon is reachable)."""
    if spec.get("step_mode", "absolute") == "absolute":
        return float(spec["step_size"])
    return float(spec["step_size"]) * epsilon / spec["steps"]


def reach(spec: dict, epsilon: float) -> float:
    """The largest perturbation norm the attack can produce: min(epsilon, steps * step) for
    PGD (each step moves at most `step` in the attack's norm), epsilon for the others."""
    if spec["method"] not in ITERATIVE:
        return float(epsilon)
    return min(float(epsilon), spec["steps"] * step_size(spec, epsilon))


def budget_warnings(attacks: dict) -> list[str]:
    """One line per (attack, epsilon) whose step budget cannot reach epsilon."""
    lines = []
    for name, spec in attacks.items():
        for eps in spec["epsilons"]:
            if reach(spec, eps) < eps * (1 - 1e-9):
                lines.append(f"attack '{name}' ({spec['method']}): {spec['steps']} steps of "
                             f"{step_size(spec, eps):.5g} reach at most {reach(spec, eps):.5g} < epsilon {eps:g}; "
                             "its results at this epsilon are those of the smaller reachable radius")
    return lines
