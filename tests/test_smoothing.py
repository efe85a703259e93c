"""Randomized smoothing from class counts (docs/science.md §1.2, Cohen et al. 2019) and the
multi-scale cascade (docs/science.md §1.3, Jeong & Shin 2023), checked against closed forms
(Beta quantiles, binomial tails) on grids of counts."""

import itertools

import numpy as np
import pytest
from scipy.stats import beta, binom, norm

from dds.smoothing.bounds import (
    ABSTAIN,
    Certificate,
    MultiScaleCertificate,
    certify,
    confidence_interval,
    lower_confidence_bound,
    multiscale_certify,
    predict,
)

ALPHAS = [0.001, 0.01, 0.05]
NS = [1, 10, 100, 1000]


def count_grid():
    """(nA, n) pairs: for each n, 0, 1, a few inner values, n - 1 and n."""
    pairs = []
    for n in NS:
        values = {0, 1, n // 4, n // 2, n // 2 + 1, (3 * n) // 4, (9 * n) // 10, n - 1, n}
        pairs += [(k, n) for k in sorted(v for v in values if 0 <= v <= n)]
    return pairs


GRID = count_grid()


def closed_form_lower(nA, n, alpha):
    """One-sided Clopper-Pearson lower bound: the alpha quantile of Beta(nA, n - nA + 1)."""
    return 0.0 if nA == 0 else float(beta.ppf(alpha, nA, n - nA + 1))


def ci(k, n, alpha):
    """Two-sided Clopper-Pearson interval: the alpha/2 quantile of Beta(k, n - k + 1) and the
    1 - alpha/2 quantile of Beta(k + 1, n - k)."""
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.isf(alpha / 2, k + 1, n - k))
    return low, high


# --- lower_confidence_bound ------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_lower_confidence_bound_matches_closed_form(alpha):
    for nA, n in GRID:
        got = lower_confidence_bound(nA, n, alpha)
        assert isinstance(got, float)
        assert got == pytest.approx(closed_form_lower(nA, n, alpha), rel=1e-10, abs=1e-14), (nA, n)
        assert 0.0 <= got <= nA / n


@pytest.mark.parametrize("alpha", ALPHAS)
def test_lower_confidence_bound_zero_successes_is_zero(alpha):
    for n in NS:
        assert lower_confidence_bound(0, n, alpha) == 0.0


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", NS)
def test_lower_confidence_bound_all_successes(alpha, n):
    # Beta(n, 1) has cdf p^n, so its alpha quantile is alpha ** (1 / n)
    assert lower_confidence_bound(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-10)


def test_lower_confidence_bound_monotone():
    n = 100
    for alpha in ALPHAS:
        bounds = [lower_confidence_bound(k, n, alpha) for k in range(n + 1)]
        assert all(a < b for a, b in zip(bounds, bounds[1:]))
    # a smaller alpha (more confidence) gives a smaller lower bound
    assert (
        lower_confidence_bound(80, 100, 0.001)
        < lower_confidence_bound(80, 100, 0.01)
        < lower_confidence_bound(80, 100, 0.05)
    )


# --- certify -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("sigma", [0.25, 1.0])
def test_certify_abstains_exactly_when_lower_bound_below_half(alpha, sigma):
    seen = {"abstain": 0, "certify": 0}
    for nA, n in GRID:
        # three classes; the selection draws point at class 2
        counts0 = np.array([1, 0, 7])
        counts = np.array([(n - nA) // 2, n - nA - (n - nA) // 2, nA])
        cert = certify(counts0, counts, sigma, alpha)
        assert isinstance(cert, Certificate)
        pl = closed_form_lower(nA, n, alpha)
        assert cert.nA == nA
        assert cert.pA_lower == pytest.approx(pl, rel=1e-10, abs=1e-14)
        if pl < 0.5:
            seen["abstain"] += 1
            assert cert.predict == ABSTAIN == -1, (nA, n)
            assert cert.radius == 0.0
        else:
            seen["certify"] += 1
            assert cert.predict == 2, (nA, n)
            assert cert.radius == pytest.approx(sigma * norm.ppf(pl), rel=1e-10, abs=1e-12)
            assert cert.radius >= 0
    assert seen["abstain"] > 5 and seen["certify"] > 5


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", [10, 100, 1000])
def test_certify_constant_classifier(alpha, n):
    sigma = 0.5
    counts0 = np.zeros(10, dtype=np.int64)
    counts0[4] = 100
    counts = np.zeros(10, dtype=np.int64)
    counts[4] = n
    cert = certify(counts0, counts, sigma, alpha)
    assert cert.nA == n
    assert cert.pA_lower == pytest.approx(alpha ** (1 / n), rel=1e-10)
    if alpha ** (1 / n) < 0.5:
        assert cert.predict == ABSTAIN and cert.radius == 0.0
    else:
        assert cert.predict == 4
        assert cert.radius == pytest.approx(sigma * norm.ppf(alpha ** (1 / n)), rel=1e-9)


def test_certify_constant_classifier_known_value():
    # n = 100, alpha = 0.001: pA_lower = 0.001 ** 0.01 = 0.93325..., radius = sigma * 1.5001...
    cert = certify(np.array([0, 100]), np.array([0, 100]), 0.25, 0.001)
    assert cert.predict == 1
    assert cert.pA_lower == pytest.approx(0.9332543, rel=1e-6)
    assert cert.radius == pytest.approx(0.25 * norm.ppf(0.001**0.01), rel=1e-12)
    assert 0.37 < cert.radius < 0.38


def test_certify_class_chosen_by_selection_counts():
    # the selection draws say class 1; the estimation draws favour class 0: nA is counts[1]
    cert = certify(np.array([2, 5, 1]), np.array([90, 10, 0]), 0.5, 0.001)
    assert cert.nA == 10
    assert cert.predict == ABSTAIN and cert.radius == 0.0
    assert cert.pA_lower == pytest.approx(closed_form_lower(10, 100, 0.001), rel=1e-10)
    # and when the selected class holds most of the estimation draws, it is certified
    cert = certify(np.array([2, 5, 1]), np.array([5, 95, 0]), 0.5, 0.001)
    assert cert.predict == 1 and cert.nA == 95
    assert cert.radius == pytest.approx(0.5 * norm.ppf(closed_form_lower(95, 100, 0.001)), rel=1e-10)
    # class 2 selected even though it is last in the counts
    cert = certify(np.array([0, 0, 9]), np.array([0, 0, 100]), 1.0, 0.01)
    assert cert.predict == 2 and cert.nA == 100


def test_certify_lower_bound_exactly_half_certifies_radius_zero():
    # find counts whose lower bound is >= 0.5 by the least margin to check the boundary side
    n, alpha = 1000, 0.01
    nA = next(k for k in range(n + 1) if closed_form_lower(k, n, alpha) >= 0.5)
    cert = certify(np.array([0, 1]), np.array([n - nA, nA]), 0.5, alpha)
    assert cert.predict == 1 and 0 <= cert.radius < 0.01
    cert = certify(np.array([0, 1]), np.array([n - nA + 1, nA - 1]), 0.5, alpha)
    assert cert.predict == ABSTAIN and cert.radius == 0.0
    # pA_lower exactly 0.5 (0.25 ** (1/2), 0.5 ** 1): not below 0.5, so certified with radius 0
    for counts, alpha in [([0, 2], 0.25), ([0, 1], 0.5), ([0, 4], 0.0625)]:
        cert = certify(np.array([0, 1]), np.array(counts), 0.5, alpha)
        assert cert.pA_lower == 0.5
        assert cert.predict == 1 and cert.radius == 0.0


# --- predict -----------------------------------------------------------------------------------


def two_sided_pvalue(nA, nB):
    """The exact two-sided binomial test of nA successes in nA + nB draws against p = 0.5: by
    symmetry twice the upper tail P(X >= max(nA, nB)), at most 1."""
    return min(1.0, 2 * float(binom.sf(max(nA, nB) - 1, nA + nB, 0.5)))


def expected_predict(counts, alpha):
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    nA, nB = counts[order[0]], counts[order[1]]
    if nA == nB:
        return ABSTAIN
    return ABSTAIN if two_sided_pvalue(nA, nB) > alpha else order[0]


@pytest.mark.parametrize("alpha", ALPHAS)
def test_predict_matches_binomial_test(alpha):
    seen = set()
    values = [0, 1, 3, 8, 15, 40, 60, 100]
    for a, b, c in itertools.product(values, repeat=3):
        counts = np.array([a, b, c])
        if sorted(counts)[-2] + sorted(counts)[-1] == 0:
            continue
        got = predict(counts, alpha)
        assert got == expected_predict(counts.tolist(), alpha), counts
        seen.add(got)
    assert seen == {ABSTAIN, 0, 1, 2}


def test_predict_abstains_exactly_on_the_pvalue():
    alpha = 0.01
    for nA in range(0, 201):
        counts = np.array([200 - nA, nA, 0, 0])
        nTop = int(max(counts))
        want = ABSTAIN if two_sided_pvalue(nTop, 200 - nTop) > alpha else int(np.argmax(counts))
        assert predict(counts, alpha) == want, counts
    # the test is on the two top counts only: a third class does not enter
    assert predict(np.array([30, 10, 5]), 0.05) == 0
    assert predict(np.array([30, 10, 500]), 0.05) == 2
    assert predict(np.array([500, 499, 0]), 0.05) == ABSTAIN


@pytest.mark.parametrize("counts", [[5, 5, 0], [0, 50, 50], [1000, 0, 1000], [7, 7, 7], [1, 1]])
def test_predict_ties_abstain(counts):
    for alpha in ALPHAS + [0.5, 0.99]:
        assert predict(np.array(counts), alpha) == ABSTAIN


# --- confidence_interval ----------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_confidence_interval_matches_closed_form(alpha):
    for k, n in GRID:
        low, high = confidence_interval(k, n, alpha)
        assert isinstance(low, float) and isinstance(high, float)
        want_low, want_high = ci(k, n, alpha)
        assert low == pytest.approx(want_low, rel=1e-10, abs=1e-14), (k, n)
        assert high == pytest.approx(want_high, rel=1e-10, abs=1e-14), (k, n)
        assert 0 <= low <= k / n <= high <= 1


# --- multiscale_certify ------------------------------------------------------------------------


def spread(n, classes=10):
    """Counts spread evenly over all classes: every upper bound well below 0.5."""
    counts = np.full(classes, n // classes)
    counts[0] += n - counts.sum()
    return counts


def one_hot(c, size=10, total=100):
    out = np.zeros(size, dtype=np.int64)
    out[c] = total
    return out


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_multiscale_certifies_at_stage_one(order):
    alpha = 0.001
    sigmas = [1.0, 0.5, 0.25]
    counts0 = [one_hot(3), one_hot(3), one_hot(5)]
    counts = [np.array([0, 0, 0, 900, 0, 0, 0, 0, 0, 100]), spread(1000), spread(1000)]
    cert = multiscale_certify(
        [sigmas[i] for i in order], [counts0[i] for i in order], [counts[i] for i in order], alpha
    )
    assert isinstance(cert, MultiScaleCertificate)
    pl = ci(900, 1000, alpha / 3)[0]  # every stage at level alpha / K, K = 3
    assert pl >= 0.5
    assert cert.predict == 3
    assert cert.stage == 1
    assert cert.radius == pytest.approx(1.0 * (norm.ppf(pl) - norm.ppf(0.5)), rel=1e-10)


# Two cases worked through Jeong & Shin's definition (n = 10000 per sigma, alpha = 0.001,
# class 0 first): sigma 1.0 passes (class 0's upper bound is below 0.5), sigma 0.5 certifies
# class 0 with its own radius 0.5 Phi^-1(pl) = 0.785, capped by sigma 1.0: 1.0 (0 - Phi^-1(u))
# with u the upper bound of class 1 (3000 -> 0.3167, 3500 -> 0.3673) at level alpha / 3.
@pytest.mark.parametrize(
    "top_stage, class1, want", [([4700, 3000, 2300], 3000, 0.477), ([4000, 3500, 2500], 3500, 0.339)]
)
def test_multiscale_reproduces_the_cascade_as_defined(top_stage, class1, want):
    alpha, n = 0.001, 10000
    sigmas = [0.25, 0.5, 1.0]
    counts = [np.array([9900, 60, 40]), np.array([9500, 300, 200]), np.array(top_stage)]
    cert = multiscale_certify(sigmas, [np.array([1, 0, 0])] * 3, counts, alpha)
    u = ci(class1, n, alpha / 3)[1]
    assert cert.predict == 0 and cert.stage == 2
    assert cert.radius == pytest.approx(-norm.ppf(u), rel=1e-10)
    assert cert.radius == pytest.approx(want, abs=0.001)
    # the certified class's own upper bound at sigma 1.0 (0.488 and 0.418) caps nothing: taking
    # it, as dds once did, gives 0.030 and 0.208
    assert -norm.ppf(ci(top_stage[0], n, alpha / 3)[1]) < cert.radius / 1.5


def test_multiscale_levels_add_up_to_alpha():
    """K stages at alpha / K each: the same counts certify a smaller radius with more stages
    before them, and one stage alone is Cohen's CERTIFY at alpha (two-sided alpha: one-sided
    alpha / 2 per bound)."""
    alpha = 0.01
    c = np.array([0, 980, 20])
    alone = multiscale_certify([0.5], [one_hot(1, 3)], [c], alpha)
    assert alone.radius == pytest.approx(0.5 * norm.ppf(ci(980, 1000, alpha)[0]), rel=1e-10)
    for stages in (2, 4):
        sigmas = [0.5] + [1.0 + k for k in range(stages - 1)]
        counts = [c] + [spread(1000, 3)] * (stages - 1)
        cert = multiscale_certify(sigmas, [one_hot(1, 3)] * stages, counts, alpha)
        pl = ci(980, 1000, alpha / stages)[0]
        assert cert.stage == stages and cert.predict == 1
        assert cert.radius <= 0.5 * norm.ppf(pl) + 1e-12 < alone.radius


def test_multiscale_stage_one_with_other_p0():
    alpha, p0 = 0.01, 0.7
    cert = multiscale_certify(
        [0.25, 0.5], [one_hot(1), one_hot(2)], [one_hot(1, total=500), np.array([0, 50, 950, 0])], alpha, p0
    )
    pl = ci(950, 1000, alpha / 2)[0]
    assert cert.predict == 2 and cert.stage == 1
    assert cert.radius == pytest.approx(0.5 * (norm.ppf(pl) - norm.ppf(p0)), rel=1e-10)
    # a lower bound between 0.5 and p0 does not certify
    cert = multiscale_certify([0.5], [one_hot(2)], [np.array([0, 320, 680, 0])], alpha, p0)
    assert 0.5 < ci(680, 1000, alpha)[0] < p0 <= ci(680, 1000, alpha)[1]
    assert cert == MultiScaleCertificate(ABSTAIN, 0.0, 1)


def test_multiscale_refuses_p0_below_one_half():
    with pytest.raises(ValueError, match="p0=0.4.*p0 >= 0.5"):
        multiscale_certify([0.5], [one_hot(2)], [one_hot(2)], 0.01, 0.4)


def test_multiscale_abstains_when_selected_class_undecided():
    alpha = 0.001
    counts = np.array([520, 300, 180])  # the selected class: pl < 0.5 <= pu
    pl, pu = ci(520, 1000, alpha / 2)
    assert pl < 0.5 <= pu
    cert = multiscale_certify(
        [1.0, 0.5], [np.array([9, 1, 0]), np.array([9, 1, 0])], [counts, np.array([1000, 0, 0])], alpha
    )
    assert cert == MultiScaleCertificate(ABSTAIN, 0.0, 1)


def test_multiscale_passes_when_only_another_class_is_undecided():
    """The abstain rule looks at the selected class only: the selection draws pick class 0,
    class 1 may reach 0.5 at sigma 1.0, and the cascade goes on. Whatever the next stage
    certifies, the cap of the passed stage then decides: certifying class 1 (the undecided one
    itself) keeps the next stage's radius; certifying class 0 would be capped by class 1's
    upper bound >= 0.5 (a cap <= 0: it may already be class 1 at x), so it abstains."""
    alpha = 0.001
    first = np.array([100, 480, 420])
    assert ci(100, 1000, alpha / 2)[1] < 0.5 <= ci(480, 1000, alpha / 2)[1]
    own = multiscale_certify([0.5], [np.array([0, 9, 1])], [np.array([0, 1000, 0])], alpha / 2)
    cert = multiscale_certify(
        [1.0, 0.5], [np.array([9, 1, 0]), np.array([0, 9, 1])], [first, np.array([0, 1000, 0])], alpha
    )
    assert cert.predict == 1 and cert.stage == 2
    # class 1's cap uses class 2's upper bound (420), far from 0.5: the own radius is smaller
    cap = 1.0 * (norm.ppf(0.5) - norm.ppf(ci(420, 1000, alpha / 2)[1]))
    assert cert.radius == pytest.approx(min(own.radius, cap), rel=1e-10)
    cert = multiscale_certify(
        [1.0, 0.5], [np.array([9, 1, 0]), np.array([9, 1, 0])], [first, np.array([1000, 0, 0])], alpha
    )
    assert cert == MultiScaleCertificate(ABSTAIN, 0.0, 2)


def test_multiscale_abstains_at_later_stage():
    alpha = 0.001
    sigmas = [0.25, 1.0, 0.5]  # stages: 1.0 (1), 0.5 (2), 0.25 (3)
    counts0 = [one_hot(0), one_hot(0), one_hot(1)]
    counts = [
        np.array([1000, 0, 0, 0]),  # 0.25: would certify, never reached
        np.array([250, 250, 250, 250]),  # 1.0: passes
        np.array([100, 480, 420, 0]),
    ]  # 0.5: the selected class 1 is undecided at level alpha/3
    assert ci(480, 1000, alpha / 3)[0] < 0.5 <= ci(480, 1000, alpha / 3)[1]
    assert multiscale_certify(sigmas, counts0, counts, alpha) == MultiScaleCertificate(ABSTAIN, 0.0, 2)


@pytest.mark.parametrize("alpha", [0.001, 0.01])
def test_multiscale_passes_then_certifies_with_lowered_radius(alpha):
    p0 = 0.5
    sigmas = [0.25, 0.5, 1.0]
    counts0 = [one_hot(7, 10, 100), one_hot(2, 10, 100), one_hot(7, 10, 100)]
    c1 = np.array([300, 0, 0, 0, 0, 0, 0, 310, 200, 190])  # sigma 1.0, stage 1: passes
    c2 = np.array([0, 0, 350, 330, 320, 0, 0, 0, 0, 0])  # sigma 0.5, stage 2: passes
    c3 = np.array([0, 0, 0, 0, 0, 0, 0, 990, 10, 0])  # sigma 0.25, stage 3: certifies class 7
    cert = multiscale_certify(sigmas, counts0, [c3, c2, c1], alpha, p0)

    # by hand: u_j is the largest upper bound at stage j over the classes other than 7
    # (class 0's 300 at sigma 1.0, not class 7's own 310), all at level alpha / 3
    u1 = ci(300, 1000, alpha / 3)[1]
    u2 = ci(350, 1000, alpha / 3)[1]
    pl3 = ci(990, 1000, alpha / 3)[0]
    assert u1 < p0 and u2 < p0 <= pl3
    want = min(
        0.25 * (norm.ppf(pl3) - norm.ppf(p0)), 1.0 * (norm.ppf(p0) - norm.ppf(u1)), 0.5 * (norm.ppf(p0) - norm.ppf(u2))
    )
    assert cert.predict == 7
    assert cert.stage == 3
    assert cert.radius == pytest.approx(want, rel=1e-10)


def test_multiscale_radius_capped_by_a_passed_stage():
    alpha, p0 = 0.001, 0.5
    # stage 1 (sigma 1) passes with class 1 fairly close to 0.5; stage 2 certifies class 0
    # strongly at sigma 0.5: the passed stage's cap (from class 1) is the smaller radius
    c1 = np.array([400, 420, 180])
    c2 = np.array([1000, 0, 0])
    u1 = ci(420, 1000, alpha / 2)[1]
    pl2 = ci(1000, 1000, alpha / 2)[0]
    assert u1 < p0 <= pl2
    own = 0.5 * (norm.ppf(pl2) - norm.ppf(p0))
    cap = 1.0 * (norm.ppf(p0) - norm.ppf(u1))
    assert cap < own
    cert = multiscale_certify([1.0, 0.5], [np.array([5, 0, 0]), np.array([5, 0, 0])], [c1, c2], alpha, p0)
    assert cert.predict == 0 and cert.stage == 2
    assert cert.radius == pytest.approx(cap, rel=1e-10)
    # without the first stage the radius is the stage's own, at level alpha
    cert = multiscale_certify([0.5], [np.array([5, 0, 0])], [c2], alpha, p0)
    assert cert.stage == 1
    assert cert.radius == pytest.approx(0.5 * (norm.ppf(ci(1000, 1000, alpha)[0]) - norm.ppf(p0)), rel=1e-10)


def test_multiscale_abstains_with_stage_zero_when_no_stage_decides():
    alpha = 0.001
    sigmas = [0.25, 0.5, 1.0]
    counts0 = [one_hot(0), one_hot(1), one_hot(2)]
    counts = [spread(1000), spread(1000), spread(2000)]
    assert multiscale_certify(sigmas, counts0, counts, alpha) == MultiScaleCertificate(ABSTAIN, 0.0, 0)


def test_multiscale_stage_numbers_count_from_the_largest_sigma():
    alpha = 0.001
    sigmas = [0.12, 0.5, 0.25, 1.0]  # descending: 1.0 (1), 0.5 (2), 0.25 (3), 0.12 (4)
    for target, stage in [(1.0, 1), (0.5, 2), (0.25, 3), (0.12, 4)]:
        counts = [one_hot(6, total=1000) if s <= target else spread(1000) for s in sigmas]
        counts0 = [one_hot(6) for _ in sigmas]
        cert = multiscale_certify(sigmas, counts0, counts, alpha)
        assert cert.stage == stage, target
        assert cert.predict == 6
        pl = ci(1000, 1000, alpha / 4)[0]
        own = target * (norm.ppf(pl) - norm.ppf(0.5))
        assert cert.radius <= own + 1e-12
