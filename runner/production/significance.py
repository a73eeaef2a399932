"""Two conversion rates compared: the difference, its 95% interval, a p-value and a plain sentence.

With enough contacts (every expected cell of the 2x2 table at least 5, Cochran's rule)
the p-value is the two-proportion z-test's, with the standard error pooled under the
null hypothesis, and the interval is the Wald interval of the difference, with the
unpooled standard error (Agresti, *Categorical Data Analysis*, 2nd ed., 2002, §2.2.3
and §3.1.2). With fewer, the p-value is Fisher's exact test's (two-sided, from
scipy.stats) and the sentence says it is too early to tell: a normal interval on a
handful of conversions would claim more than the data holds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from scipy.stats import fisher_exact, norm

CONFIDENCE = 0.95
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
    return float(2 * norm.sf(abs(z)))


def wald_interval(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> tuple[float, float]:
    """The 95% Wald interval of rate a - rate b (unpooled standard error)."""
    rate_a, rate_b = conversions_a / contacts_a, conversions_b / contacts_b
    error = math.sqrt(rate_a * (1 - rate_a) / contacts_a + rate_b * (1 - rate_b) / contacts_b)
    margin = float(norm.ppf(1 - (1 - CONFIDENCE) / 2)) * error
    return rate_a - rate_b - margin, rate_a - rate_b + margin


def fisher_p(conversions_a: int, contacts_a: int, conversions_b: int, contacts_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table (converted or not, a or b)."""
    table = [[conversions_a, contacts_a - conversions_a], [conversions_b, contacts_b - conversions_b]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


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
    points, low, high = (100 * value for value in (c.difference, c.low, c.high))
    interval = f"95% CI {low:.1f}–{high:.1f}"
    if low > 0:
        return f"{c.a} converts {points:.1f} points better than {c.b}, {interval}"
    if high < 0:
        return f"{c.a} converts {-points:.1f} points worse than {c.b}, {interval}"
    return f"no clear difference yet: {c.a} converts {points:+.1f} points against {c.b}, {interval}"
