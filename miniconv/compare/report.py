"""A study's report from its runs: DIR/report.json, DIR/report.md and DIR/study.png.

report.json (accuracies in accuracy points, %; ``stats`` says how every number is computed):

    engines     {engine: {"seeds", "accuracies", "mean", "std", "sem", "ci95": [lo, hi], "n",
                          "final_losses", "seconds_per_epoch"}}
    difference  {"of": "miniconv - keras", "mean", "ci90": [lo, hi], "ci95", "margin", "p_tost",
                 "p_two_sided", "df", "verdict", "why", "rule"}          (None unless both engines ran)
    speed_ratio {"of", "seeds", "ratios", "median", "min", "max", "geometric_mean", "geometric_ci95"}
    runs        one row per (seed, engine): accuracy, final loss, seconds per epoch, host
    missing     the (engine, seed) runs asked for but not in the results file; complete: none missing
    machines    every distinct host with its CPU count, BLAS library and BLAS / oneDNN variables

Only the runs asked for (the engines and seeds 0..N-1 of this invocation) are counted, once each.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from .. import saving
from . import stats

REPORT_JSON, REPORT_MD, PLOT = "report.json", "report.md", "study.png"


def build(runs: dict, engines: list[str], seeds: list[int], margin: float, settings: dict) -> dict:
    """The report of ``runs`` ({(engine, seed): run}) restricted to ``engines`` x ``seeds``."""
    per_engine, rows = {}, []
    for engine in engines:
        mine = [runs[(engine, s)] for s in seeds if (engine, s) in runs]
        accuracies = [100 * r["accuracy"] for r in mine]
        per_engine[engine] = {"seeds": [r["seed"] for r in mine], "accuracies": accuracies,
                              **stats.describe(accuracies), "final_losses": [r["loss"] for r in mine],
                              "seconds_per_epoch": [r["seconds_per_epoch"] for r in mine]}
    for seed in seeds:
        for engine in engines:
            if (engine, seed) in runs:
                r = runs[(engine, seed)]
                rows.append({"seed": seed, "engine": engine, "accuracy": 100 * r["accuracy"], "loss": r["loss"],
                             "seconds_per_epoch": r["seconds_per_epoch"], "epochs": r.get("epochs"),
                             "host": r.get("machine", {}).get("host")})
    difference = speed = None
    if "miniconv" in engines and "keras" in engines:
        difference = {"of": "miniconv - keras", **stats.difference(per_engine["miniconv"]["accuracies"],
                                                                     per_engine["keras"]["accuracies"], margin),
                      "rule": stats.RULE}
        spe = {e: {r["seed"]: r["seconds_per_epoch"] for r in rows if r["engine"] == e} for e in ("miniconv", "keras")}
        speed = {"of": "miniconv / keras seconds per training epoch, seed by seed",
                 **stats.ratios(spe["miniconv"], spe["keras"])}
    missing = [[e, s] for s in seeds for e in engines if (e, s) not in runs]
    return {"recipe": settings.get("recipe"), "settings": settings, "engines_compared": engines, "seeds": seeds,
            "accuracy": "validation accuracy after the last epoch (MNIST: the test set), in accuracy points (%)",
            "engines": per_engine, "difference": difference, "speed_ratio": speed, "runs": rows,
            "missing": missing, "complete": not missing, "machines": machines(runs, engines, seeds),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def machines(runs: dict, engines, seeds) -> list[dict]:
    """Each distinct host of the counted runs: CPU count, BLAS library, BLAS / oneDNN variables, versions."""
    found = {}
    for (engine, seed), run in runs.items():
        if engine in engines and seed in seeds:
            m = run.get("machine", {})
            entry = found.setdefault(m.get("host"), {"host": m.get("host"), "cpu_count": m.get("cpu_count"),
                                                     "blas": m.get("blas"), "env": {}, "engines": {}})
            entry["env"].update(m.get("env", {}))
            entry["engines"].setdefault(engine, run.get("info", {}))
    return list(found.values())


def _interval(ci) -> str:
    return "–" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _number(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    """report.md: the verdict first, then per engine, the difference, the speed ratio, every run, the machines."""
    s, d = report["settings"], report["difference"]
    options = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("recipe",) and v is not None)
    lines = [(f"# miniconv compare {report['recipe']}: {', '.join(report['engines_compared'])} over seeds "
             f"{report['seeds'][0]}–{report['seeds'][-1]}"), "",
             f"Settings: {options}. Accuracy: {report['accuracy']}. Written {report['date']}.", ""]
    if not report["complete"]:
        lines += [f"**Incomplete:** {len(report['missing'])} run(s) missing: "
                  + ", ".join(f"{e} seed {s_}" for e, s_ in report["missing"]) + ". Run the same command again.", ""]
    if d is not None:
        lines += [(f"**Verdict: {d['verdict']}** at a margin of ±{d['margin']:g} points: miniconv − Keras = "
                  f"{_number(d['mean'])} points, 90% CI {_interval(d['ci90'])} ({d['why']})."), "",
                  f"Rule: {d['rule']}.", ""]
    lines += ["| engine | runs | mean (%) | std | 95% CI | mean s / epoch |", "|---|---:|---:|---:|---:|---:|"]
    for engine, e in report["engines"].items():
        spe = np.mean(e["seconds_per_epoch"]) if e["seconds_per_epoch"] else None
        lines.append(f"| {engine} | {e['n']} | {_number(e['mean'])} | {_number(e['std'])} | {_interval(e['ci95'])} "
                     f"| {_number(spe, 2)} |")
    if d is not None:
        lines += ["", (f"Difference of means (Welch): {_number(d['mean'])} points, se {_number(d['se'])}, "
                      f"df {_number(d['df'], 1)}; 90% CI {_interval(d['ci90'])}, 95% CI {_interval(d['ci95'])}; "
                      f"TOST p = {_number(d['p_tost'], 4)}, two-sided p = {_number(d['p_two_sided'], 4)}.")]
    r = report["speed_ratio"]
    if r and r["n"]:
        lines += ["", f"Speed ratio (miniconv / Keras seconds per training epoch, seed by seed, {r['n']} seeds): "
                      f"median {r['median']:.2f}×, range {r['min']:.2f}–{r['max']:.2f}×, geometric mean "
                      f"{r['geometric_mean']:.2f}× (95% CI {_interval(r['geometric_ci95'])}); every ratio: "
                      + ", ".join(f"{x:.2f}" for x in r["ratios"]) + "."]
    lines += ["", "| seed | engine | accuracy (%) | final loss | s / epoch | host |", "|---:|---|---:|---:|---:|---|"]
    lines += [f"| {row['seed']} | {row['engine']} | {row['accuracy']:.2f} | {row['loss']:.4f} | "
              f"{row['seconds_per_epoch']:.2f} | {row['host']} |" for row in report["runs"]]
    lines += ["", "Machines:"]
    for m in report["machines"]:
        blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})" for b in m["blas"] or [])
        env = ", ".join(f"{k}={v}" for k, v in sorted(m["env"].items())) or "none set"
        onednn = m["env"].get("TF_ENABLE_ONEDNN_OPTS", "unset: oneDNN on, TensorFlow's default")
        lines.append(f"- {m['host']}: {m['cpu_count']} CPUs; BLAS {blas or 'unknown'}; variables: {env}; "
                     f"TF_ENABLE_ONEDNN_OPTS {onednn}; " + "; ".join(
                         f"{e}: {json.dumps(i, sort_keys=True)}" for e, i in m["engines"].items()))
    lines += ["", f"![accuracies and learning curves]({PLOT})", ""]
    return "\n".join(lines)


def plot(report: dict, runs: dict, path: Path) -> bool:
    """study.png: a strip plot of the accuracies (mean and 95% CI beside), and the learning curves, mean ± one
    standard deviation over seeds (validation accuracy, training loss). False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    rng = np.random.default_rng(0)  # the strip's jitter only
    colors = {"miniconv": "tab:blue", "keras": "tab:orange"}
    for i, (engine, e) in enumerate(report["engines"].items()):
        color = colors.get(engine)
        axes[0].scatter(i + rng.uniform(-0.12, 0.12, len(e["accuracies"])), e["accuracies"], color=color, alpha=0.7)
        if e["ci95"]:
            axes[0].errorbar(i + 0.3, e["mean"], yerr=[[e["mean"] - e["ci95"][0]], [e["ci95"][1] - e["mean"]]],
                             fmt="o", color=color, capsize=4)
        for ax, key, scale in ((axes[1], "val_accuracy", 100), (axes[2], "loss", 1)):
            curves = [np.asarray(runs[(engine, s)]["history"][key]) * scale for s in e["seeds"]]
            if not curves or len({len(c) for c in curves}) != 1:
                continue
            curves = np.stack(curves)
            epochs = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(0), curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1])
            ax.plot(epochs, mean, "o-", color=color, markersize=3, label=f"{engine} (n={len(curves)})")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
    axes[0].set_xticks(range(len(report["engines"])), list(report["engines"]))
    axes[0].set_xlim(-0.5, len(report["engines"]) - 0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("accuracy after the last epoch, per seed (mean, 95% CI)")
    for ax, title in ((axes[1], "validation accuracy (%)"), (axes[2], "training loss")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(f"{title}: mean ± 1 sd over seeds")
        ax.legend()
    figure.tight_layout()
    saving.atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=90))
    plt.close(figure)
    return True


def write(out: Path, report: dict, runs: dict) -> list[str]:
    """report.json, report.md and (with matplotlib) study.png in ``out``, each atomically; the names written."""
    text = (json.dumps(report, indent=1) + "\n").encode()
    saving.atomic_write(out / REPORT_JSON, lambda handle: handle.write(text))
    md = markdown(report).encode()
    saving.atomic_write(out / REPORT_MD, lambda handle: handle.write(md))
    return [REPORT_JSON, REPORT_MD] + ([PLOT] if plot(report, runs, out / PLOT) else [])
