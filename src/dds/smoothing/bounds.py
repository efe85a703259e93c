"""Randomized smoothing from class counts (Cohen, Rosenfeld & Kolter 2019; docs/science.md §1.2)
and its multi-scale cascade (Jeong & Shin 2023; docs/science.md §1.3).

The smoothed classifier is g(x) = argmax_c P(f(D(x + sigma n)) = c), n ~ N(0, I). The
functions here take the counts of the base predictions over noise draws (the sampling
lives in `dds.smoothing.sampling`), so they read like the paper's pseudocode and can be checked
against it on any counts.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportion_confint

ABSTAIN = -1


def lower_confidence_bound(nA: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on pA from nA successes in n draws."""
    return float(proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0])


def confidence_interval(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) Clopper-Pearson interval for k successes in n draws."""
    low, high = proportion_confint(k, n, alpha=alpha, method="beta")
    return float(low), float(high)


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer: the class (ABSTAIN = -1) and its certified L2 radius."""

    predict: int
    radius: float
    nA: int
    pA_lower: float


def certify(counts0: np.ndarray, counts: np.ndarray, sigma: float, alpha: float) -> Certificate:
    """CERTIFY. `counts0`: class counts of the n0 selection draws; `counts`: of n fresh draws.

    With probability at least 1 - alpha over the draws: if the answer is a class cA (not
    ABSTAIN), then g(x + delta) = cA for every ||delta||_2 < radius = sigma * Phi^-1(pA_lower).
    Abstains when pA_lower < 0.5.
    """
    cAHat = int(np.argmax(counts0))
    n, nA = int(np.sum(counts)), int(counts[cAHat])
    pABar = lower_confidence_bound(nA, n, alpha)
    if pABar < 0.5:
        return Certificate(ABSTAIN, 0.0, nA, pABar)
    return Certificate(cAHat, float(sigma * norm.ppf(pABar)), nA, pABar)


def predict(counts: np.ndarray, alpha: float) -> int:
    """PREDICT. With probability at least 1 - alpha the answer is g(x) or ABSTAIN: abstains
    unless the two-sided binomial test of the top count against the runner-up (p = 0.5) is
    below alpha."""
    top2 = np.argsort(counts, kind="stable")[::-1][:2]
    nA, nB = int(counts[top2[0]]), int(counts[top2[1]])
    if binomtest(nA, nA + nB, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2[0])


@dataclass(frozen=True)
class MultiScaleCertificate:
    predict: int
    radius: float
    stage: int  # 1-based index of the sigma where the cascade stopped; 0 = it never stopped


def multiscale_certify(
    sigmas, counts0_by_sigma, counts_by_sigma, alpha: float, p0: float = 0.5
) -> MultiScaleCertificate:
    """The multi-scale cascade over sigmas taken from the largest down (docs/science.md §1.3).

    Every stage k of the K takes two-sided Clopper-Pearson intervals of every class at level
    alpha / K; a stage's decision rests on at most two one-sided bounds (the selected class's
    lower bound, and the upper bound of the one other class that could reach p0 >= 0.5), each
    wrong with probability at most alpha / (2K), so the K stages together err with probability
    at most alpha (union bound). At stage k, with [pl, pu] the interval of the class selected
    by the selection counts:

    - pl >= p0: certify that class with radius s_k (Phi^-1(pl) - Phi^-1(p0)), capped for each
      larger sigma s_j already passed by s_j (Phi^-1(p0) - Phi^-1(u_j)), u_j the largest upper
      bound at stage j among the classes other than the certified one (only another class
      reaching p0 there changes the output; the certified class reaching it stops there with
      the same answer). A cap <= 0 means another class may already reach p0 at x: abstain;
    - else pu >= p0: abstain (the selected class may reach p0: undecided);
    - else go on to the next smaller sigma. If no stage decides, abstain (stage 0).
    """
    if p0 < 0.5:
        raise ValueError(f"p0={p0}: per-class bounds are simultaneous only for p0 >= 0.5")
    order = np.argsort(np.asarray(sigmas, dtype=float))[::-1]
    level = alpha / len(order)
    passed = []  # (sigma, upper bounds of every class) of the stages passed
    for k, i in enumerate(order, start=1):
        sigma, counts = float(sigmas[i]), np.asarray(counts_by_sigma[i])
        top = int(np.argmax(counts0_by_sigma[i]))
        lower, upper = proportion_confint(counts, int(counts.sum()), alpha=level, method="beta")
        if lower[top] >= p0:
            caps = [s * (norm.ppf(p0) - norm.ppf(np.delete(u, top).max())) for s, u in passed]
            if any(cap <= 0 for cap in caps):
                return MultiScaleCertificate(ABSTAIN, 0.0, k)
            radius = sigma * (norm.ppf(lower[top]) - norm.ppf(p0))
            return MultiScaleCertificate(top, float(min([radius, *caps])), k)
        if upper[top] >= p0:
            return MultiScaleCertificate(ABSTAIN, 0.0, k)
        passed.append((sigma, np.asarray(upper, dtype=float)))
    return MultiScaleCertificate(ABSTAIN, 0.0, 0)
