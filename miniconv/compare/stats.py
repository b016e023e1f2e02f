"""The statistics of a study, by SciPy (``scipy.stats``): nothing here is hand-rolled but the verdict rule.

Per engine, accuracies a_1..a_n (in accuracy points, %):

    mean = sum(a) / n,   std = sqrt(sum((a - mean)^2) / (n - 1)),   sem = std / sqrt(n)
    ci95 = mean -/+ t_{0.975, n-1} * sem                        (scipy.stats.t.interval)

The difference d = mean(miniconv) - mean(keras), Welch's unequal-variance t (``ttest_ind(equal_var=False)``):

    se = sqrt(s_m^2 / n_m + s_k^2 / n_k),  df = se^4 / ((s_m^2/n_m)^2 / (n_m-1) + (s_k^2/n_k)^2 / (n_k-1))
    ciX = d -/+ t_{(1+X)/2, df} * se                             (result.confidence_interval(X))

Equivalence at margin m (TOST, two one-sided Welch tests at alpha = 0.05):

    H0_low:  d <= -m   p_low  = ttest_ind(a_m + m, a_k, alternative="greater").pvalue
    H0_high: d >= +m   p_high = ttest_ind(a_m - m, a_k, alternative="less").pvalue
    p_tost = max(p_low, p_high);  p_tost < 0.05  <=>  ci90 lies inside (-m, +m)

The verdict, in this order:

    "equivalent"            p_tost < 0.05 (the 90% CI of d lies strictly inside (-m, +m))
    "different"             not equivalent, and the 95% CI of d excludes 0 (two-sided Welch p < 0.05)
    "not shown equivalent"  otherwise, and whenever an engine has fewer than 2 runs

If both engines' runs have no spread at all (se = 0, where the t statistic is undefined), the
intervals shrink to d itself and the same rules read: equivalent if |d| < m, else different.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

ALPHA = 0.05
EQUIVALENT, NOT_SHOWN, DIFFERENT = "equivalent", "not shown equivalent", "different"
RULE = ("equivalent if the 90% CI of the difference of means (Welch) lies inside (-margin, +margin), i.e. both "
        "one-sided tests of TOST reject at alpha 0.05; else different if the 95% CI excludes 0; else not shown "
        "equivalent (also with fewer than 2 runs per engine)")


def describe(values) -> dict:
    """n, mean, std (n - 1), standard error and the 95% t interval of ``values`` (None where n is too small)."""
    from scipy import stats

    a = np.asarray(values, dtype=float)
    n = len(a)
    out = {"n": n, "mean": float(a.mean()) if n else None, "std": None, "sem": None, "ci95": None}
    if n >= 2:
        std = float(a.std(ddof=1))
        sem = float(stats.sem(a))
        ci = (out["mean"], out["mean"]) if sem == 0 else stats.t.interval(0.95, n - 1, loc=out["mean"], scale=sem)
        out.update(std=std, sem=sem, ci95=[float(ci[0]), float(ci[1])])
    return out


def difference(a, b, margin: float, alpha: float = ALPHA) -> dict:
    """mean(a) - mean(b) with Welch's 90% and 95% intervals, the TOST at ``margin`` and the verdict."""
    with warnings.catch_warnings():  # one engine without spread: SciPy warns of precision loss, se > 0 still
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        return _difference(a, b, margin, alpha)


def _difference(a, b, margin: float, alpha: float) -> dict:
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = {"mean": float(a.mean() - b.mean()) if len(a) and len(b) else None, "margin": margin, "test": "Welch t",
           "alpha": alpha, "ci90": None, "ci95": None, "se": None, "df": None, "p_two_sided": None,
           "p_tost": None, "p_low": None, "p_high": None}
    if len(a) < 2 or len(b) < 2:
        return {**out, "verdict": NOT_SHOWN, "why": "fewer than 2 runs on an engine: no spread to test against"}
    d = out["mean"]
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if se == 0:
        verdict = EQUIVALENT if abs(d) < margin else DIFFERENT
        return {**out, "ci90": [d, d], "ci95": [d, d], "se": 0.0, "verdict": verdict,
                "why": "no spread in either engine's runs: the intervals are the difference itself"}
    test = stats.ttest_ind(a, b, equal_var=False)
    ci90, ci95 = test.confidence_interval(1 - 2 * alpha), test.confidence_interval(1 - alpha)
    p_low = stats.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
    p_high = stats.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    p_tost = max(float(p_low), float(p_high))
    if p_tost < alpha:
        verdict, why = EQUIVALENT, f"the 90% CI lies inside (-{margin:g}, +{margin:g})"
    elif test.pvalue < alpha:
        verdict, why = DIFFERENT, "the 95% CI excludes 0 and the 90% CI is not inside the margin"
    else:
        verdict, why = NOT_SHOWN, "the 90% CI reaches beyond the margin and the 95% CI includes 0"
    return {**out, "ci90": [float(ci90.low), float(ci90.high)], "ci95": [float(ci95.low), float(ci95.high)],
            "se": se, "df": float(test.df), "p_two_sided": float(test.pvalue), "p_tost": p_tost,
            "p_low": float(p_low), "p_high": float(p_high), "verdict": verdict, "why": why}


def ratios(numerator: dict, denominator: dict) -> dict:
    """Per-seed ratios numerator[s] / denominator[s] over the seeds both have: the list, median, min, max,
    and the geometric mean with its 95% t interval on the log scale (exp of ``ttest_1samp(log r)``'s CI)."""
    from scipy import stats

    seeds = sorted(set(numerator) & set(denominator))
    r = [numerator[s] / denominator[s] for s in seeds]
    out = {"seeds": seeds, "ratios": r, "n": len(r), "median": None, "min": None, "max": None,
           "geometric_mean": None, "geometric_ci95": None}
    if not r:
        return out
    logs = np.log(r)
    out.update(median=float(np.median(r)), min=float(min(r)), max=float(max(r)), geometric_mean=float(np.exp(logs.mean())))
    if len(r) >= 2 and logs.std() > 0:
        ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
        out["geometric_ci95"] = [float(np.exp(ci.low)), float(np.exp(ci.high))]
    return out
