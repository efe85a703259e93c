"""What an attack configuration can reach, without importing torch: the Snakefile checks
every attack's step budget against its epsilons before any job runs."""

from dds.attacks.registry import METHODS, step_size


def reach(spec: dict, epsilon: float) -> float:
    """The largest perturbation norm the attack can produce: min(epsilon, steps * step) for
    PGD (each step moves at most `step` in the attack's norm), epsilon for the others."""
    if not METHODS[spec["method"]].iterative:
        return float(epsilon)
    return min(float(epsilon), spec["steps"] * step_size(spec, epsilon))


def budget_warnings(attacks: dict) -> list[str]:
    """One line per (attack, epsilon) whose step budget cannot reach epsilon."""
    lines = []
    for name, spec in attacks.items():
        for eps in spec["epsilons"]:
            if reach(spec, eps) < eps * (1 - 1e-9):
                lines.append(
                    f"attack '{name}' ({spec['method']}): {spec['steps']} steps of "
                    f"{step_size(spec, eps):.5g} reach at most {reach(spec, eps):.5g} < epsilon {eps:g}; "
                    "its results at this epsilon are those of the smaller reachable radius"
                )
    return lines
