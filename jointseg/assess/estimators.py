"""Design-based accuracy and area estimates from a probability sample.

* **Estimates from a probability sample** (Olofsson et al. 2013, 2014; Stehman 2014):
  :func:`olofsson_estimates` from a sample count matrix when the strata are the map
  classes, and :func:`stratified_estimates` per sample unit for any strata (e.g. map
  class x zone) and any domain (a region, a city, a zone); :func:`estimates_by_group`
  for the whole population and each group; :func:`stratified_total` for the total of
  one per-unit value (e.g. net growth). They give the error matrix in area
  proportions, overall/user's/producer's accuracy and error-adjusted class areas, each
  with a standard error and a ``z``-based confidence interval (95 % for ``z = 1.96``).
* **Interval** (``interval``): a key of :data:`jointseg.assess.variance.INTERVALS`
  (``"agresti-coull"``, the default, or the papers' plain ``"wald"``); the variance
  machinery (pseudo-units, :class:`~jointseg.assess.variance.StratifiedDesign`) is
  :mod:`jointseg.assess.variance`.

Multi-class count matrices and the per-class user's / producer's accuracy, F1 and IoU of
a count or proportion matrix are :mod:`jointseg.assess.matrices`. Binary pixel agreement
of two rasters (precision, recall, F1, OA, kappa, IoU from pixel counts) is
:mod:`jointseg.metrics` (:class:`~jointseg.metrics.BinaryCounts`,
:func:`~jointseg.metrics.binary_metrics`): agreement with another product, not
accuracy in the statistical sense.

Conventions: count matrices ``n[i, j]`` have **rows = map class, columns = reference
class** (Olofsson et al. 2014, Table 8), except the ``[[tn, fp], [fn, tp]]`` layout of
:meth:`jointseg.metrics.BinaryCounts.confusion` (rows = reference, as scikit-learn).

References:
    Olofsson, P., Foody, G. M., Stehman, S. V., Woodcock, C. E. (2013). Making better
    use of accuracy data in land change studies. Remote Sens. Environ. 129, 122-131.
    Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder,
    M. A. (2014). Good practices for estimating area and assessing accuracy of land
    change. Remote Sens. Environ. 148, 42-57.
    Stehman, S. V. (2014). Estimating area and map accuracy for stratified random
    sampling when the strata are different from the map classes. Int. J. Remote Sens.
    35, 4923-4939.
    Agresti, A., Coull, B. A. (1998). Approximate is better than "exact" for interval
    estimation of binomial proportions. Am. Stat. 52, 119-126.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from jointseg.assess.variance import (
    DEFAULT_INTERVAL,
    INTERVALS,
    Z95,
    StratifiedDesign,
    UnitVariable,
    pseudo_units,
)


@dataclass(frozen=True)
class StratifiedEstimate:
    """Design-based accuracy and area estimates with standard errors.

    Attributes:
        classes: class labels, the order of every per-class array.
        error_matrix: estimated area proportions ``p[i, j]`` (rows map, cols reference).
        oa, oa_se: overall accuracy and its standard error.
        ua, ua_se: user's accuracy per map class.
        pa, pa_se: producer's accuracy per reference class.
        area_prop, area_prop_se: error-adjusted area proportion per class.
        area, area_se: error-adjusted area per class in ``area_unit`` (total
            estimator: area proportion x total area of the population or domain).
        area_unit: unit of ``area`` (e.g. ``"ha"``, ``"km2"``, ``"pixels"``).
        map_area: mapped area per class in ``area_unit`` (what the map claims).
        n: sample units used.
        z: normal quantile of the confidence intervals (1.96 -> 95 %).
        notes: remarks on the estimate (strata with one unit, dropped units).
        interval: how the standard errors were made (a key of
            :data:`~jointseg.assess.variance.INTERVALS`).
    """

    classes: tuple
    error_matrix: np.ndarray
    oa: float
    oa_se: float
    ua: np.ndarray
    ua_se: np.ndarray
    pa: np.ndarray
    pa_se: np.ndarray
    area_prop: np.ndarray
    area_prop_se: np.ndarray
    area: np.ndarray
    area_se: np.ndarray
    area_unit: str
    map_area: np.ndarray
    n: int
    z: float = Z95
    notes: list[str] = field(default_factory=list)
    interval: str = DEFAULT_INTERVAL

    def ci(self, se: float | np.ndarray) -> float | np.ndarray:
        """Half-width of the confidence interval: ``z * se``."""
        return self.z * se

    def to_dict(self) -> dict:
        """JSON-ready dict: per-class blocks with estimate, SE and CI half-width."""
        per_class = {}
        for k, c in enumerate(self.classes):
            per_class[str(c)] = {
                "users_accuracy": _f(self.ua[k]), "users_accuracy_ci": _f(self.z * self.ua_se[k]),
                "producers_accuracy": _f(self.pa[k]),
                "producers_accuracy_ci": _f(self.z * self.pa_se[k]),
                "f1": _f(2 * self.ua[k] * self.pa[k] / (self.ua[k] + self.pa[k]))
                if self.ua[k] + self.pa[k] else None,
                "area_proportion": _f(self.area_prop[k]),
                "area_proportion_ci": _f(self.z * self.area_prop_se[k]),
                "area": _f(self.area[k]), "area_ci": _f(self.z * self.area_se[k]),
                "map_area": _f(self.map_area[k]),
            }
        return {
            "n_samples": int(self.n),
            "confidence_z": self.z,
            "interval": self.interval, "interval_method": INTERVALS[self.interval],
            "area_unit": self.area_unit,
            "overall_accuracy": _f(self.oa),
            "overall_accuracy_ci": _f(self.z * self.oa_se),
            "classes": per_class,
            "error_matrix_area_proportions": [[_f(v) for v in row] for row in self.error_matrix],
            "error_matrix_layout": "rows = map class, columns = reference class",
            "notes": list(self.notes),
        }


def _f(v: float) -> float | None:
    v = float(v)
    return None if np.isnan(v) else v


def olofsson_estimates(
    counts: np.ndarray,
    map_area: Sequence[float] | np.ndarray,
    *,
    classes: Sequence[object] | None = None,
    area_scale: float = 1.0,
    area_unit: str = "pixels",
    z: float = Z95,
    interval: str = DEFAULT_INTERVAL,
) -> StratifiedEstimate:
    """Olofsson et al. (2013, 2014) estimators when the strata are the map classes.

    With ``W_i`` = mapped area share of class i, ``n_i.`` the sample size of stratum
    (map class) i and ``n_ij`` the sample counts (rows map, columns reference):

    * p_ij = W_i n_ij / n_i.                        (error matrix in area proportions)
    * OA = sum_j p_jj;  V(OA) = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1)
    * U_i = p_ii / p_i.;  V(U_i) = U_i (1 - U_i) / (n_i. - 1)
    * P_j = p_jj / p_.j;  V(P_j) = N_.j^-2 [N_j.^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j. - 1)
      + P_j^2 sum_{i != j} N_i.^2 (n_ij / n_i.)(1 - n_ij / n_i.) / (n_i. - 1)],
      N_.j = sum_i N_i. n_ij / n_i.                   (Olofsson et al. 2014, eq. 7)
    * p_.k = sum_i W_i n_ik / n_i.;  S(p_.k)^2 = sum_i W_i^2 (n_ik/n_i.)(1 - n_ik/n_i.)
      / (n_i. - 1);  area A_k = A p_.k,  S(A_k) = A S(p_.k)

    With ``interval="agresti-coull"`` the variances use (n_ij + z²/q) / (n_i. + z²) in
    place of n_ij / n_i. (the estimates do not change); ``"wald"`` is the paper's.
    No finite-population correction (as in the paper). A stratum with one sample unit
    contributes 0 to the variances (noted in ``notes``).

    Args:
        counts: (q, q) sample counts, rows = map class (stratum), cols = reference.
        map_area: mapped size of each class (pixels or any area unit), length q.
        classes: labels (default 0..q-1).
        area_scale: factor from ``map_area`` units to ``area_unit`` (e.g. 0.09 ha per
            30 m pixel).
        area_unit: name of the area unit of the outputs.
        z: normal quantile for the CIs.
        interval: a key of :data:`~jointseg.assess.variance.INTERVALS`.

    Raises:
        ValueError: on shape mismatch, negative counts, a stratum without samples or
            an unknown interval.
    """
    n = np.asarray(counts, np.float64)
    a = np.asarray(map_area, np.float64)
    q = n.shape[0]
    kappa = pseudo_units(interval, z)
    if n.shape != (q, q) or a.shape != (q,):
        raise ValueError(f"counts must be (q, q) and map_area (q,), got {n.shape}, {a.shape}")
    if (n < 0).any() or (a < 0).any():
        raise ValueError("counts and map_area must be non-negative")
    classes = tuple(range(q)) if classes is None else tuple(classes)
    ni = n.sum(axis=1)
    if (ni[a > 0] == 0).any():
        empty = [classes[i] for i in np.flatnonzero((ni == 0) & (a > 0))]
        raise ValueError(f"map classes {empty} have mapped area but no sample units")
    notes = []
    if (ni == 1).any():
        notes.append(f"strata with one unit contribute no variance: "
                     f"{[classes[i] for i in np.flatnonzero(ni == 1)]}")
    total = a.sum()
    w = a / total
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(ni[:, None] > 0, n / ni[:, None], 0.0)  # n_ij / n_i.
        vfrac = np.where(ni[:, None] > 0, (n + kappa / q) / (ni[:, None] + kappa), 0.0)
        dof = np.where(ni > 1, ni - 1, np.inf)  # 1-unit strata -> zero variance
        p = w[:, None] * frac
        oa = float(np.trace(p))
        ua = np.diag(p) / p.sum(axis=1)
        pa = np.diag(p) / p.sum(axis=0)
        ua_v = np.diag(vfrac)  # U_i as the variance sees it
        oa_var = float(np.sum(w**2 * ua_v * (1 - ua_v) / dof))
        ua_var = ua_v * (1 - ua_v) / dof
        cell_var = vfrac * (1 - vfrac) / dof[:, None]  # (n_ij/n_i.)(1 - n_ij/n_i.)/(n_i. - 1)
        area_prop = p.sum(axis=0)
        area_prop_var = np.sum((w**2)[:, None] * cell_var, axis=0)
        nhat_j = (a[:, None] * frac).sum(axis=0)  # N_.j in map_area units
        pa_var = np.empty(q)
        for j in range(q):
            others = sum(a[i] ** 2 * cell_var[i, j] for i in range(q) if i != j)
            pa_var[j] = (a[j] ** 2 * (1 - pa[j]) ** 2 * ua_var[j]
                         + pa[j] ** 2 * others) / nhat_j[j] ** 2
    return StratifiedEstimate(
        classes=classes, error_matrix=p, oa=oa, oa_se=float(np.sqrt(oa_var)),
        ua=ua, ua_se=np.sqrt(ua_var), pa=pa, pa_se=np.sqrt(pa_var),
        area_prop=area_prop, area_prop_se=np.sqrt(area_prop_var),
        area=area_prop * total * area_scale,
        area_se=np.sqrt(area_prop_var) * total * area_scale,
        area_unit=area_unit, map_area=a * area_scale, n=int(n.sum()), z=z, notes=notes,
        interval=interval,
    )


def stratified_estimates(
    strata: Sequence[object] | np.ndarray,
    map_class: Sequence[object] | np.ndarray,
    reference: Sequence[object] | np.ndarray,
    stratum_sizes: Mapping[object, float],
    classes: Sequence[object],
    *,
    domain: np.ndarray | None = None,
    area_scale: float = 1.0,
    area_unit: str = "pixels",
    fpc: bool = False,
    z: float = Z95,
    interval: str = DEFAULT_INTERVAL,
) -> StratifiedEstimate:
    """Stratified random sampling estimators per sample unit (Stehman 2014).

    Works when the strata differ from the map classes (e.g. map class x zone) and
    for a *domain* (a zone, a city: ``domain`` is a boolean per unit). Each unit of
    stratum h has inclusion probability pi_h = n_h / N_h and weight N_h / n_h. Each
    target is a ratio R = Y / X of population totals estimated as Y_hat = sum_h N_h
    ybar_h with variance (Stehman 2014, eq. 28)

        V(R_hat) = X_hat^-2 sum_h N_h^2 (1 - f_h) (s2_yh + R^2 s2_xh - 2 R s_xyh) / n_h

    with f_h = n_h / N_h when ``fpc`` (else 0, as Olofsson et al. 2014). With d the
    domain indicator: OA uses y = d[m = r], x = d; UA_k y = d[m = r = k], x = d[m = k];
    PA_k y = d[m = r = k], x = d[r = k]; area proportion p_k y = d[r = k], x = d; the
    error-adjusted area A_k = Y_hat (x ``area_scale``) with V = sum_h N_h^2 (1 - f_h)
    s2_yh / n_h. With strata = map classes and no domain this equals
    :func:`olofsson_estimates` (for either ``interval``).

    Args:
        strata, map_class, reference: one entry per sample unit.
        stratum_sizes: N_h per stratum label (pixels or any area unit), every stratum
            of the population, sampled or not.
        classes: class labels in output order.
        domain: boolean per unit, True inside the domain (None = whole population).
        area_scale: factor from ``stratum_sizes`` units to ``area_unit``.
        area_unit: name of the unit of ``area``.
        fpc: apply the finite-population correction.
        z: normal quantile for the CIs.
        interval: a key of :data:`~jointseg.assess.variance.INTERVALS` (the pseudo-units
            copy domain units).

    Raises:
        ValueError: on length mismatch, a unit in an unknown stratum, a stratum of
            positive size without sample units or an unknown interval.
    """
    s = np.asarray(strata, dtype=object)
    m = np.asarray(map_class, dtype=object)
    r = np.asarray(reference, dtype=object)
    if not (len(s) == len(m) == len(r)):
        raise ValueError(f"strata, map_class, reference lengths differ: {len(s)}, "
                         f"{len(m)}, {len(r)}")
    d = np.ones(len(s), bool) if domain is None else np.asarray(domain, bool)
    unknown = set(s.tolist()) - set(stratum_sizes)
    if unknown:
        raise ValueError(f"sample units in strata without a size: {sorted(map(str, unknown))}")
    design = StratifiedDesign(s, stratum_sizes, r, classes, d, fpc, pseudo_units(interval, z))
    total, ratio = design.total, design.ratio
    q = len(classes)
    df = d.astype(np.float64)

    def const(v: np.ndarray) -> UnitVariable:
        return lambda _r: v

    def ref_is(k: object, base: np.ndarray = d) -> UnitVariable:
        return lambda rr: (base & (rr == k)).astype(float)

    is_m = [(m == c) & d for c in classes]
    oa, oa_var = ratio(lambda rr: ((m == rr) & d).astype(float), const(df))
    ua, ua_var, pa, pa_var = (np.empty(q) for _ in range(4))
    ap, ap_var, area, area_var, map_area = (np.empty(q) for _ in range(5))
    p = np.empty((q, q))
    for k, c in enumerate(classes):
        hit = ref_is(c, is_m[k])
        ua[k], ua_var[k] = ratio(hit, const(is_m[k].astype(float)))
        pa[k], pa_var[k] = ratio(hit, ref_is(c))
        ap[k], ap_var[k] = ratio(ref_is(c), const(df))
        area[k], area_var[k] = total(ref_is(c))
        map_area[k], _ = total(const(is_m[k].astype(float)))
        for j, cj in enumerate(classes):
            p[k, j], _ = ratio(ref_is(cj, is_m[k]), const(df))
    return StratifiedEstimate(
        classes=tuple(classes), error_matrix=p, oa=oa, oa_se=float(np.sqrt(oa_var)),
        ua=ua, ua_se=np.sqrt(ua_var), pa=pa, pa_se=np.sqrt(pa_var),
        area_prop=ap, area_prop_se=np.sqrt(ap_var),
        area=area * area_scale, area_se=np.sqrt(area_var) * area_scale,
        area_unit=area_unit, map_area=map_area * area_scale, n=int(d.sum()), z=z,
        notes=design.notes, interval=interval,
    )


def estimates_by_group(
    strata: Sequence[object] | np.ndarray,
    map_class: Sequence[object] | np.ndarray,
    reference: Sequence[object] | np.ndarray,
    groups: Sequence[object] | np.ndarray,
    stratum_sizes: Mapping[object, float],
    classes: Sequence[object],
    **kwargs: object,
) -> dict[str, StratifiedEstimate]:
    """:func:`stratified_estimates` for the whole population (key ``"all"``) and for
    each group (region, city, zone) as a domain; units with group None/NaN count only
    in ``"all"``. ``kwargs`` go to :func:`stratified_estimates`."""
    g = np.asarray(groups, dtype=object)
    out = {"all": stratified_estimates(strata, map_class, reference, stratum_sizes,
                                       classes, **kwargs)}
    names = sorted({str(v) for v in g.tolist() if v is not None and v == v})
    for name in names:
        dom = np.array([v is not None and v == v and str(v) == name for v in g.tolist()])
        out[name] = stratified_estimates(strata, map_class, reference, stratum_sizes,
                                         classes, domain=dom, **kwargs)
    return out


def stratified_total(
    strata: Sequence[object] | np.ndarray,
    reference: Sequence[object] | np.ndarray,
    stratum_sizes: Mapping[object, float],
    value_of: Mapping[object, float],
    classes: Sequence[object],
    *,
    fpc: bool = False,
    z: float = Z95,
    interval: str = DEFAULT_INTERVAL,
) -> tuple[float, float]:
    """Y_hat = sum_h N_h ybar_h and its standard error for y = ``value_of[reference]``
    (0 for classes not in ``value_of``), e.g. net growth = +1 new, -1 lost.

    Same design and interval as :func:`stratified_estimates` (pseudo-units take each of
    ``classes`` in turn).

    Raises:
        ValueError: as :func:`stratified_estimates`.
    """
    s = np.asarray(strata, dtype=object)
    r = np.asarray(reference, dtype=object)
    unknown = set(s.tolist()) - set(stratum_sizes)
    if unknown:
        raise ValueError(f"sample units in strata without a size: {sorted(map(str, unknown))}")
    design = StratifiedDesign(s, stratum_sizes, r, classes, np.ones(len(s), bool), fpc,
                     pseudo_units(interval, z))

    def y(rr: np.ndarray) -> np.ndarray:
        return np.array([float(value_of.get(v, 0.0)) for v in rr.tolist()])

    t, v = design.total(y)
    return t, float(np.sqrt(v))
