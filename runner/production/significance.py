"""Two conversion rates compared: the difference, its 95% interval, a p-value and a plain sentence.

With enough contacts (every expected cell of the 2x2 table at least 5, Cochran's rule)
the p-value is the two-proportion z-test's, with the standard error pooled under the
null hypothesis, and the interval is the Wald interval of the difference, with the
unpooled standard error (Agresti, *Categorical Data Analysis*, 2nd ed., 2002, §2.2.3
and §3.1.2). With fewer, the p-value is Fisher's exact test's and the sentence says
it is too early to tell: a normal interval on a handful of conversions would claim
more than the data holds.

Fisher's two-sided p-value is the total probability, under the hypergeometric
distribution of the table with its margins fixed, of every table no more likely
than the observed one (Agresti 2002, §3.5.1), with the relative tolerance of 1e-7
that R's ``fisher.test`` and ``scipy.stats.fisher_exact`` use for ties. The normal
distribution is the standard library's (``statistics.NormalDist``): importing
scipy.stats alone took longer than the 2 s ``journey stats`` may take. The tests
check both against published worked examples and against scipy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist

CONFIDENCE = 0.95
NORMAL = NormalDist()
FISHER_TOLERANCE = 1 + 1e-7  # tables this close to the observed one's probability count as ties
MIN_EXPECTED = 5  # Cochran's rule: below this expected count the normal approximation is not trusted
Z_TEST = "two-proportion z-test"
FISHER = "Fisher's exact test"


@dataclass(frozen=True)
class Comparison:
    """Group ``a`` against group ``b``: rates and ``difference`` (a - b) as proportions."""

    a: str
    b: str
    contacts_a: int
    conversions_a: int
    contacts_b: int
    conversions_b: int
    rate_a: float | None
    rate_b: float | None
    difference: float | None
    low: float | None  # the 95% interval of the difference
    high: float | None
    p_value: float | None
    test: str | None
    enough: bool  # counts large enough for the normal approximation
    sentence: str

    def as_dict(self) -> dict:
        return asdict(self)


def compare(a: str, conversions_a: int, contacts_a: int, b: str, conversions_b: int, contacts_b: int) -> Comparison:
    """Compare the conversion rate of ``a`` with that of ``b`` (see the module doc)."""
    if contacts_a == 0 or contacts_b == 0:
        empty = a if contacts_a == 0 else b
        return Comparison(a, b, contacts_a, conversions_a, contacts_b, conversions_b, None, None, None, None, None,
                          None, None, False, f"no contacts in {empty} yet")
    rate_a, rate_b = conversions_a / contacts_a, conversions_b / contacts_b
    difference = rate_a - rate_b
    low, high = wald_interval(conversions_a, contacts_a, conversions_b, contacts_b)
    enough = _enough(conversions_a, contacts_a, conversions_b, contacts_b)
    if enough:
        test, p_value = Z_TEST, z_test(conversions_a, contacts_a, conversions_b, contacts_b)
    else:
        test, p_value = FISHER, fisher_p(conversions_a, contacts_a, conversions_b, contacts_b)
    comparison = Comparison(a, b, contacts_a, conversions_a, contacts_b, conversions_b,
                            rate_a, rate_b, difference, low, high, p_value, test, enough, "")
    return replace(comparison, sentence=sentence(comparison))


def z_test(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> float:
    """Two-sided p-value of the two-proportion z-test (pooled standard error)."""
    pooled = (conversions_a + conversions_b) / (contacts_a + contacts_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / contacts_a + 1 / contacts_b))
    if error == 0:  # nobody converted, or everybody: no evidence of a difference
        return 1.0
    z = (conversions_a / contacts_a - conversions_b / contacts_b) / error
    return math.erfc(abs(z) / math.sqrt(2))  # 2 (1 - Phi(|z|)), without losing the digits of a tiny p


def wald_interval(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> tuple[float, float]:
    """The 95% Wald interval of rate a - rate b (unpooled standard error)."""
    rate_a, rate_b = conversions_a / contacts_a, conversions_b / contacts_b
    error = math.sqrt(rate_a * (1 - rate_a) / contacts_a + rate_b * (1 - rate_b) / contacts_b)
    margin = NORMAL.inv_cdf(1 - (1 - CONFIDENCE) / 2) * error
    return rate_a - rate_b - margin, rate_a - rate_b + margin


def fisher_p(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table (converted or not, a or b)."""
    converted = conversions_a + conversions_b
    total = contacts_a + contacts_b

    def log_probability(k: int) -> float:  # k of the conversions in a: hypergeometric, in logs
        return (_log_comb(contacts_a, k) + _log_comb(contacts_b, converted - k) - _log_comb(total, converted))

    observed = log_probability(conversions_a) + math.log(FISHER_TOLERANCE)
    tables = range(max(0, converted - contacts_b), min(contacts_a, converted) + 1)
    p_value = sum(math.exp(p) for p in map(log_probability, tables) if p <= observed)
    return min(1.0, p_value)


def _log_comb(n: int, k: int) -> float:
    """log(n choose k), for counts far past what exact integers would allow quickly."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _enough(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> bool:
    """Is every expected cell count (under equal rates) at least ``MIN_EXPECTED``?"""
    pooled = (conversions_a + conversions_b) / (contacts_a + contacts_b)
    expected = [n * share for n in (contacts_a, contacts_b) for share in (pooled, 1 - pooled)]
    return min(expected) >= MIN_EXPECTED


def sentence(comparison: Comparison) -> str:
    """What a marketer reads: 'converts 2.1 points better, 95% CI 0.4–3.8', or too early to tell."""
    c = comparison
    if not c.enough:
        return (f"not enough contacts yet to tell ({c.contacts_a} in {c.a}, {c.contacts_b} in {c.b}; "
                f"{c.conversions_a + c.conversions_b} conversions)")
    assert c.difference is not None and c.low is not None and c.high is not None  # set whenever enough
    points, low, high = (100 * value for value in (c.difference, c.low, c.high))
    interval = f"95% CI {low:.1f}–{high:.1f}"
    if low > 0:
        return f"{c.a} converts {points:.1f} points better than {c.b}, {interval}"
    if high < 0:
        return f"{c.a} converts {-points:.1f} points worse than {c.b}, {interval}"
    return f"no clear difference yet: {c.a} converts {points:+.1f} points against {c.b}, {interval}"
