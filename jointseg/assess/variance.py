"""Confidence intervals of the design-based estimates: the interval methods and the
variance of totals and ratios under stratified random sampling.

* **Interval** (``interval``): ``"agresti-coull"`` (default) keeps the design-based point
  estimates and computes every variance with z² pseudo-units per stratum, spread evenly
  over the reference classes (Agresti & Coull 1998 within each stratum; for two classes
  p~_h = (x_h + z²/2) / (n_h + z²)), so a stratum whose sample shows no error still
  contributes variance; ``"wald"`` is the plain textbook variance of the papers (a
  stratum without observed error contributes 0, and the interval shrinks exactly when
  it should be widest). :data:`INTERVALS` describes both; :func:`pseudo_units` gives
  the pseudo-units of each.
* **Stratified design** (:class:`StratifiedDesign`): the estimated total of a per-unit
  variable and the ratio of two, each with its variance (Stehman 2014, eq. 28), the
  pseudo-units added to each stratum's sample variance. The estimators of
  :mod:`jointseg.assess.estimators` are made of these.

References:
    Stehman, S. V. (2014). Estimating area and map accuracy for stratified random
    sampling when the strata are different from the map classes. Int. J. Remote Sens.
    35, 4923-4939.
    Agresti, A., Coull, B. A. (1998). Approximate is better than "exact" for interval
    estimation of binomial proportions. Am. Stat. 52, 119-126.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

Z95 = 1.96
INTERVALS = {
    "agresti-coull": "design-based estimate ± z SE, SE from each stratum's sample plus z² "
                     "pseudo-units spread evenly over the reference classes (Agresti-Coull "
                     "within each stratum): a stratum without observed error still "
                     "contributes variance",
    "wald": "design-based estimate ± z SE with the plain stratified variance (Olofsson et "
            "al. 2014; Stehman 2014): a stratum without observed error contributes 0",
}
DEFAULT_INTERVAL = "agresti-coull"


def pseudo_units(interval: str, z: float) -> float:
    """Pseudo-units added to each stratum's variance: z² (``agresti-coull``) or 0.

    Raises:
        ValueError: for an unknown interval.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r}: expected one of {sorted(INTERVALS)}")
    return z * z if interval == "agresti-coull" else 0.0


# A per-unit variable as a function of the reference labels (map class and domain fixed)
UnitVariable = Callable[[np.ndarray], np.ndarray]


class StratifiedDesign:
    """The strata of a stratified sample: totals and ratio estimators of per-unit variables.

    A variable is a function of the reference labels (:data:`UnitVariable`), so that the
    variance can add ``kappa`` pseudo-units per stratum: copies of the stratum's domain
    units with each reference class in turn, of total weight ``kappa`` (Agresti-Coull
    within the stratum and domain). The estimates use the real units only.

    Args:
        strata: stratum label per sample unit.
        stratum_sizes: N_h per stratum label, every stratum of the population.
        reference: reference label per unit.
        classes: the reference classes the pseudo-units take.
        domain: boolean per unit (the units the pseudo-units copy).
        fpc: apply the finite-population correction f_h = n_h / N_h.
        kappa: pseudo-units per stratum (0 = the plain variance).

    Raises:
        ValueError: for a stratum of positive size without sample units.
    """

    def __init__(self, strata: np.ndarray, stratum_sizes: Mapping[object, float],
                 reference: np.ndarray, classes: Sequence[object], domain: np.ndarray,
                 fpc: bool, kappa: float = 0.0) -> None:
        labels = list(stratum_sizes)
        self.sizes = np.array([float(stratum_sizes[h]) for h in labels])
        self.members = [strata == h for h in labels]
        self.nh = np.array([mb.sum() for mb in self.members], np.float64)
        empty = [str(h) for h, size, k in zip(labels, self.sizes, self.nh, strict=True)
                 if size > 0 and k == 0]
        if empty:
            raise ValueError(f"strata {empty} have positive size but no sample units")
        self.notes: list[str] = []
        if (self.nh == 1).any():
            self.notes.append(f"strata with one unit contribute no variance: "
                              f"{[str(h) for h, k in zip(labels, self.nh, strict=True) if k == 1]}")
        sizes = self.sizes
        self.f = np.where(fpc & (sizes > 0), self.nh / np.where(sizes > 0, sizes, 1), 0.0)
        self.reference = reference
        self.classes = list(classes)
        self.kappa = float(kappa)
        self.domain = np.asarray(domain, bool)

    def _strata(self) -> Iterator[tuple[np.ndarray, float, float, float]]:
        """(members, N_h, n_h, f_h) per stratum."""
        return zip(self.members, self.sizes, self.nh, self.f, strict=True)

    def _s2(self, mb: np.ndarray, k: float, e: UnitVariable) -> float:
        """Sample variance (ddof 1) of ``e`` in one stratum, with the pseudo-units."""
        v = e(self.reference)[mb]
        dom = self.domain[mb]
        m = int(dom.sum())
        if self.kappa <= 0 or m == 0:
            return float(v.var(ddof=1))
        pw = self.kappa / (m * len(self.classes))  # weight of each pseudo-unit
        alts = [e(np.full(self.reference.shape, c, dtype=object))[mb][dom]
                for c in self.classes]
        vals = np.concatenate([v, *alts])
        wts = np.concatenate([np.ones(v.size), np.full(m * len(alts), pw)])
        mu = np.average(vals, weights=wts)
        return float(np.sum(wts * (vals - mu) ** 2) / wts.sum() * k / (k - 1))

    def total(self, y: UnitVariable) -> tuple[float, float]:
        """Y_hat = sum_h N_h ybar_h and V(Y_hat) of a per-unit variable."""
        t = v = 0.0
        yy = y(self.reference)
        for mb, size, k, fh in self._strata():
            if k == 0:
                continue
            t += size * yy[mb].mean()
            if k > 1:
                v += size**2 * (1 - fh) * self._s2(mb, k, y) / k
        return t, v

    def ratio(self, y: UnitVariable, x: UnitVariable) -> tuple[float, float]:
        """R_hat = Y_hat / X_hat and its variance (Stehman 2014, eq. 28): the variance
        of the linearised e = y - R x per stratum."""
        ty, _ = self.total(y)
        tx, _ = self.total(x)
        if tx == 0:
            return float("nan"), float("nan")
        rr = ty / tx

        def e(r: np.ndarray) -> np.ndarray:
            return y(r) - rr * x(r)

        v = 0.0
        for mb, size, k, fh in self._strata():
            if k > 1:
                v += size**2 * (1 - fh) * self._s2(mb, k, e) / k
        return rr, v / tx**2
