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

    At stage k (k = 1..K) the two-sided Clopper-Pearson interval [pl, pu] of the top class
    (chosen by the selection counts) is taken at level alpha / (k + 1). If pl >= p0 the cascade
    certifies that class with radius s_k (Phi^-1(pl) - Phi^-1(p0)), lowered so that no
    larger sigma already passed could have stopped instead: for each such stage j, whose
    largest class upper bound u_j was below p0, the radius is at most s_j (Phi^-1(p0) - Phi^-1(u_j)).
    If instead pu >= p0 for the top class or any other class, it abstains (a class might
    reach p0: undecided). Otherwise it moves to the next smaller sigma. If no stage decides,
    it abstains.
    """
    order = np.argsort(np.asarray(sigmas, dtype=float))[::-1]
    bound = np.inf  # the radius allowed by the stages passed so far
    for k, i in enumerate(order, start=1):
        sigma, counts0, counts = float(sigmas[i]), counts0_by_sigma[i], np.asarray(counts_by_sigma[i])
        n, top = int(counts.sum()), int(np.argmax(counts0))
        pl, pu = confidence_interval(int(counts[top]), n, alpha / (k + 1))
        if pl >= p0:
            radius = sigma * (norm.ppf(pl) - norm.ppf(p0))
            return MultiScaleCertificate(top, float(min(radius, bound)), k)
        # the largest upper bound over all classes (the top class's pu among them)
        u = max(pu, *(confidence_interval(int(c), n, alpha / (k + 1))[1] for c in counts))
        if u >= p0:
            return MultiScaleCertificate(ABSTAIN, 0.0, k)
        # no class can reach p0 at this sigma; how far x may move before one could
        bound = min(bound, sigma * (norm.ppf(p0) - norm.ppf(u)))
    return MultiScaleCertificate(ABSTAIN, 0.0, 0)
