"""Markdown for the benchmark results: the tables the README includes.

Every benchmark's markdown starts with ``measured_sentence`` (when, which CPU, which versions)
and ``blas_sentence`` (whether the BLAS-slowing variables were unset), and ends with
``not_run_lines`` (the contestants that could not run, and why).

``ops_markdown(data)`` turns the dict written to ``ops.json`` into ``ops.md``: a header saying
when, where and how it was measured (including whether the BLAS-slowing variables
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were unset), a time table with the ratio miniconv / TF, and
a throughput table (GFLOP/s and % of the sgemm peak) for convolutions and dense layers, and a
memory-traffic table (GB/s and % of the copy bandwidth) for the memory-bound mobile ops.
"""

from __future__ import annotations

from .harness import MINICONV_PREFIX, label

LIBRARIES = (("NumPy", "numpy"), ("Numba", "numba"), ("TensorFlow", "tensorflow"), ("PyTorch", "torch"))


def measured_sentence(machine: dict, libraries=LIBRARIES) -> str:
    """"Measured <date> on <CPU> (<n> usable cores of <m>), Python <v>; NumPy <v>, ...." for the installed ``libraries``."""
    v = dict(machine["versions"])
    v.setdefault("tensorflow", v.get("tensorflow-cpu"))
    versions = ", ".join(f"{name} {v[key]}" for name, key in libraries if v.get(key))
    return (f"Measured {machine['date']} on {machine['cpu_model']} ({machine['usable_cores']} usable cores of "
            f"{machine['cpu_count']}), Python {machine['python']}; {versions}.")


def blas_sentence(machine: dict) -> str:
    """Whether the BLAS-slowing variables OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were unset, as they should be."""
    if machine["blas_env_unset"]:
        return "`OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` were unset (`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`)."
    were = ", ".join(f"`{k}={val}`" for k, val in machine["blas_env"].items() if val is not None)
    return f"**BLAS variables were set: {were}** (they slow BLAS; unset them for real numbers)."


def not_run_lines(data: dict, name_of) -> list[str]:
    """["", "Not run: <name> (<reason>); ...."] for the contestants that never ran, [] when all did."""
    missing = [f"{name_of(n)} ({st.get('reason', 'did not run')})" for n, st in data["contestants"].items()
               if not st.get("available")]
    return ["", "Not run: " + "; ".join(missing) + "."] if missing else []


ORDER = ("tf", "torch")  # references first, then the miniconv backends in the order run
LABELS = {"tf": "TF", "torch": "PyTorch"}


def _label(name: str) -> str:
    return label(name, LABELS)


def _columns(data: dict) -> list[str]:
    ran = [n for n, s in data["contestants"].items() if s.get("available")]
    return [n for n in ORDER if n in ran] + [n for n in ran if n not in ORDER]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _table(header: list[str], rows: list[list[str]], right_from: int) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(r) + " |" for r in [header, align, *rows]]


def header(data: dict) -> list[str]:
    """What was measured where: date, CPU, versions, sgemm peak, BLAS variables, method."""
    peak = data.get("sgemm_peak")
    peak_line = (
        f"sgemm peak (NumPy, {peak['n']}x{peak['n']} float32 matmul): {peak['gflops']:.1f} GFLOP/s."
        if peak
        else "sgemm peak: not measured."
    )
    copy = data.get("copy_bandwidth")
    if copy:
        peak_line += (f" Copy bandwidth ({copy['threads']} threads copying {copy['bytes'] // 2 >> 20} MiB into"
                      f" another array, bytes read + written): {copy['gbps']:.1f} GB/s.")
    s = data["settings"]
    lines = [
        "# miniconv op benchmarks",
        "",
        measured_sentence(data["machine"]),
        f"{peak_line} {blas_sentence(data['machine'])}",
        "",
        f"Each time is the median of repeated calls after warm-up, every contestant in its own process, "
        f"contestants alternating over {s['rounds']} round(s); the best round is kept."
        + (" **Quick run (smoke test): not a real measurement.**" if s["quick"] else ""),
        (
            "fwd+bwd is the op plus its vector-Jacobian product for every input with a random upstream gradient; "
            "fwd+bwd no dx (first layers) the same without the input gradient, as training runs a first layer. "
            "FLOPs: conv 2·N·P·Q·K·R·S·C, dense 2·M·I·O, fwd+bwd 3x forward, fwd+bwd no dx 2x forward."
        ),
    ]
    return lines + not_run_lines(data, _label)


def _rate_table(results: list[dict], cols: list[str], size_header: str, size, rate: str, fraction: str) -> list[str]:
    """Per (layer, pass): its size (``size(row)``) and each contestant's ``rate`` with its ``fraction``
    of the machine's roof in brackets ("–" where a contestant did not run)."""
    head = ["layer", "pass", size_header, *(_label(c) for c in cols)]
    rows = []
    for r in results:
        cells = []
        for c in cols:
            g, f = r[rate].get(c), r[fraction].get(c)
            cells.append("–" if g is None else f"{g:.3g}" + (f" ({100 * f:.0f}%)" if f is not None else ""))
        rows.append([r["case"], r["mode"], size(r), *cells])
    return _table(head, rows, 2)


def ops_markdown(data: dict) -> str:
    """The whole ops.md: header, times with ratios to TF, throughput for conv and dense."""
    cols = _columns(data)
    minis = [c for c in cols if c.startswith(MINICONV_PREFIX)] if "tf" in cols else []  # ratio columns
    lines = header(data) + ["", "## Time per call (ms)", ""]
    head = ["layer", "op", "input", "pass", *(_label(c) for c in cols), *(f"{_label(c)} / TF" for c in minis)]
    rows = []
    for r in data["results"]:
        times = [_ms(r["seconds"].get(c)) if c not in r["errors"] else "error" for c in cols]
        ratios = [f"{r['ratio_to_tf'][c]:.2f}x" if c in r["ratio_to_tf"] else "–" for c in minis]
        rows.append([r["case"], r["op"], r["shape"], r["mode"], *times, *ratios])
    lines += _table(head, rows, 4)

    flop_rows = [r for r in data["results"] if r["flops"]]
    if flop_rows:
        lines += ["", "## Throughput: GFLOP/s (% of sgemm peak)", ""]
        lines += _rate_table(flop_rows, cols, "GFLOP", lambda r: f"{r['flops'] / 1e9:.3g}", "gflops", "fraction_of_peak")

    traffic_rows = [r for r in data["results"] if r.get("bytes")]
    if traffic_rows:
        lines += ["", "## Memory traffic: GB/s (% of copy bandwidth)", "",
                  ("Every tensor of the pass read or written once, float32 (the backward reads x again):"
                   " `benchmarks.cases.OpCase.traffic`. The copy bandwidth is measured on arrays far larger"
                   " than the caches; a pass whose tensors partly stay in the last-level cache between"
                   " calls can go past it."), ""]
        lines += _rate_table(traffic_rows, cols, "MB", lambda r: f"{r['bytes'] / 1e6:.4g}", "gbps", "fraction_of_bandwidth")

    errors = [(r["case"], r["mode"], c, e) for r in data["results"] for c, e in r["errors"].items()]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {case} {mode} on {_label(c)}: {e}" for case, mode, c, e in errors]
    return "\n".join(lines) + "\n"
