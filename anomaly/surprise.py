"""How surprising one observation is against what was expected, in decades (log10 units).

Every finding of the detector is a count against an expectation: recipients
against the usual of this hour, recipients never mailed against what the
senders usually reach that is new, bounces against the usual share. A surprise
is the Chernoff bound of the upper tail, -log10 P(X >= x), so "6" reads "about
one chance in a million"; surprises of separate findings add as the
probabilities multiply. Real traffic varies more than Poisson or binomial
chance, so both are widened: a count's variance grows as mu + mu²/K (negative
binomial) and a share's evidence stops growing after `effective` trials (a
burst of one kind of mail is one decision, not a thousand coin tosses). Below
the expectation the surprise is 0: only excess is evidence. Pure functions;
nothing raises (a non-positive expectation is taken as a small floor).
"""

from __future__ import annotations

import math

LN10 = math.log(10.0)
MIN_MU = 0.5  # the least expectation a count is measured against
MIN_P = 1e-3  # the least share a share is measured against


def count(x: float, mu: float, dispersion: float = 1.0) -> float:
    """Surprise of seeing `x` where `mu` was expected, with the variance `dispersion`
    times the mean (1: Poisson chance; negative binomial: 1 + mu/k)."""
    mu = max(mu, MIN_MU)
    if x <= mu:
        return 0.0
    return max(0.0, (x * math.log(x / mu) - x + mu) / max(dispersion, 1.0) / LN10)


def share(hits: int, trials: int, p: float, effective: float) -> float:
    """Surprise of `hits` of `trials` where a share `p` was usual, counting at most
    `effective` trials of evidence (n times the Kullback-Leibler divergence)."""
    if trials <= 0:
        return 0.0
    q, p = hits / trials, min(max(p, MIN_P), 1.0 - MIN_P)
    if q <= p:
        return 0.0
    kl = q * math.log(q / p)
    if q < 1.0:
        kl += (1.0 - q) * math.log((1.0 - q) / (1.0 - p))
    return max(0.0, min(trials, effective) * kl / LN10)
