"""``miniconv verify``: cross-check every op's forward pass and gradients against TensorFlow.

For each op of ``miniconv.nn.OPS`` and each backend, random cases (``miniconv.verify_cases``,
from a seeded ``np.random.Generator``) run through ``miniconv.vjp`` with a random upstream
gradient dy, and through TensorFlow with ``tf.GradientTape`` and the same dy.

    rel_err(a, b) = max|a - b| / max(max|b|, floor)          b: TensorFlow's value
    case error    = max of rel_err over the output and every gradient
    tolerance     = 1e-5 * sqrt(L)                              L: the case's longest reduction
                                                                (R*S*C, R*S*K, N*P*Q for conv2d)

``floor`` is 1e-30 except for ops whose results can cancel far below the size of their terms
(convolutions, dense, bias_add: 1, one product of unit-scale inputs; the sigmoid and softmax
gradients: 1/4): there a relative error would compare two rounding noises.
A case passes when its error is within its tolerance (NaN fails); an op passes when all its
cases do. Dropout cannot match TensorFlow's random stream, so it is checked on its own terms:
y in {0, x / (1 - rate)}, dx = dy * keep / (1 - rate) with the same mask, and the fraction kept
within 5 standard deviations of 1 - rate (exactly 1 at rate 0).

TensorFlow can be wrong too: TF 2.21's oneDNN conv2d returns garbage for some strided cases. When
miniconv and TF disagree on a case, two float64 computations arbitrate: miniconv's numpy backend
computing in float64 (``ops._checks.computed_in``) and TensorFlow's own float64 kernels. If those
two agree with each other and with miniconv, but TF's float32 result does not, the case is a
finding about TensorFlow, listed apart with the case to reproduce it, and not a miniconv failure;
anything else stays a failure (a miniconv bug repeats in its own float64 run, but not in TF's).
TensorFlow runs with oneDNN off unless asked (``--onednn on``): ``TF_ENABLE_ONEDNN_OPTS`` is set
before TensorFlow is imported, and the output says which it was.

    results = miniconv.verify.verify(backends=["numpy"], cases=10, seed=0)
    print(miniconv.verify.format_table(results))
"""

from __future__ import annotations

import functools
import math
import os
import sys
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from . import nn
from .backend import get_backend
from .ops import vjp
from .ops._checks import computed_in
from .verify_cases import GENERATORS, Case

TOLERANCE_SCALE = 1e-5
TINY = 1e-30
DROPOUT_SIGMAS = 5.0


class MissingDependencyError(RuntimeError):
    """An optional dependency (TensorFlow) is not installed; the message says how to get it."""


def relative_error(a, b, floor: float = TINY) -> float:
    """max|a - b| / max(max|b|, floor), in float64; inf on a shape mismatch, NaN counts as inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor, TINY))
    return err if math.isfinite(err) else math.inf


def tolerance(reduction: int) -> float:
    """1e-5 * sqrt(L): float32 rounding in a sum of L terms grows like sqrt(L)."""
    return TOLERANCE_SCALE * math.sqrt(max(int(reduction), 1))


@dataclass
class CaseResult:
    """One case on one backend. ``worst`` names the output or gradient with the largest error."""

    index: int
    description: str
    rel_err: float
    tolerance: float
    worst: str = ""
    error: str | None = None  # an exception the backend raised, or a failed dropout statistic
    tf_finding: TfFinding | None = None  # TF's float32 result was wrong here; rel_err is against float64

    @property
    def passed(self) -> bool:
        return self.error is None and self.rel_err <= self.tolerance


@dataclass
class TfFinding:
    """A case where TensorFlow's float32 result disagrees with two float64 computations (miniconv's
    numpy backend and TF's own kernels) that agree with each other and with miniconv."""

    op: str
    index: int
    description: str
    worst: str  # the output or gradient TF got most wrong
    tf_rel_err: float  # TF float32 against the float64 reference
    tf64_rel_err: float  # TF float64 against the float64 reference
    reproduce: str


@dataclass
class OpResult:
    """One op on one backend: ``max_rel_err`` over the cases, and the tolerance of that case."""

    op: str
    backend: str
    cases: int
    max_rel_err: float
    tolerance: float
    passed: bool
    failures: list[CaseResult] = field(default_factory=list)
    tf_findings: list[TfFinding] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def import_tensorflow(onednn: bool = False):
    """TensorFlow, imported on first use, quietly, with its oneDNN kernels off unless ``onednn``;
    a clear error when it is missing. ``TF_ENABLE_ONEDNN_OPTS`` is read once, when TensorFlow is
    imported: in a process that already imported it, ``onednn`` has no effect (``onednn_state`` says
    what is in use)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
    try:
        import tensorflow as tf
    except ImportError as error:
        raise MissingDependencyError(
            f"miniconv verify compares against TensorFlow, which is not installed ({error}); "
            "install it with: pip install miniconv[tf]"
        ) from None
    return tf


def onednn_state() -> str:
    """ "on" or "off": whether the imported TensorFlow runs its oneDNN kernels (TF's own answer where
    it gives one, else what TF_ENABLE_ONEDNN_OPTS said; TF's default on x86 is on)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):
        return "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") in ("0", "false", "False") else "on"


def make_cases(op: str, count: int, seed: int) -> list[Case]:
    """``count`` random cases of ``op``; the stream depends on (seed, op) only, not on other ops."""
    rng = np.random.default_rng([seed, zlib.crc32(op.encode())])
    return [GENERATORS[op](rng) for _ in range(count)]


def _outputs(y) -> list:
    """An op's outputs as a list: one array, or the tuple of a multi-output op (moments)."""
    return list(y) if isinstance(y, (tuple, list)) else [y]


def tf_reference(tf, case: Case, dy, dtype=np.float32) -> list[np.ndarray]:
    """[y, d(array) for each array]: TensorFlow's forward pass and its VJP with upstream dy, computed in
    ``dtype`` (float32, or float64 to arbitrate); for an op of several outputs: every output, then the
    gradients, dy a list with one array per output."""
    tensors = [tf.constant(a.astype(dtype)) for a in case.arrays]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        ys = _outputs(case.reference(tf, *tensors))
    grads = tape.gradient(ys, tensors, output_gradients=[tf.constant(np.asarray(d).astype(dtype)) for d in _outputs(dy)])
    return [y.numpy() for y in ys] + [np.zeros(a.shape, dtype) if g is None else g.numpy()
                                      for a, g in zip(case.arrays, grads)]


def miniconv_outputs(case: Case, backend: str, dy) -> list[np.ndarray]:
    """[y, d(array) for each array] from ``miniconv.vjp`` on ``backend``; several outputs as ``tf_reference``."""
    y, pullback = vjp(getattr(nn, case.op), *case.arrays, backend=backend, **case.kwargs)
    return [*_outputs(y), *pullback(*_outputs(dy))]


def float64_reference(case: Case, dy: np.ndarray) -> list[np.ndarray]:
    """[y, d(array) for each array] from the numpy backend computing in float64 (its kernels are
    dtype-generic): the arbiter, with TF's float64 kernels, when miniconv and TF disagree."""
    arrays = [a.astype(np.float64) for a in case.arrays]
    with computed_in(np.float64):
        y, pullback = vjp(getattr(nn, case.op), *arrays, backend="numpy", **case.kwargs)
        return [*_outputs(y), *pullback(*[np.asarray(d, np.float64) for d in _outputs(dy)])]


def compare(index: int, case: Case, ours: list[np.ndarray], reference: list[np.ndarray]) -> CaseResult:
    """The case error: the largest relative error over the output and gradients."""
    labels = list(case.outputs) + [f"d{name}" for name in case.names]
    errors = [relative_error(a, b, case.floor) for a, b in zip(ours, reference)]
    worst = int(np.argmax(errors))
    return CaseResult(index, case.describe(), errors[worst], tolerance(case.reduction), labels[worst])


def check_dropout(index: int, case: Case, backend: str, rng: np.random.Generator) -> CaseResult:
    """y in {0, x/(1-rate)}, dx = dy*keep/(1-rate) with y's mask, keep rate within 5 sigma."""
    (x,), rate = case.arrays, case.kwargs["rate"]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx = miniconv_outputs(case, backend, dy)
    keep = y != 0
    scale = 1.0 / (1.0 - rate)
    result = compare(index, case, [y, dx], [np.where(keep, x * scale, 0), np.where(keep, dy * scale, 0)])
    kept, n = float(keep.mean()), keep.size
    allowed = DROPOUT_SIGMAS * math.sqrt(rate * (1 - rate) / n)
    if abs(kept - (1 - rate)) > allowed:
        result.error = f"kept fraction {kept:.4f}, expected {1 - rate:.4f} +- {allowed:.4f}"
    return result


def verify_op(op: str, backends: list[str], cases: int = 20, seed: int = 0, tf=None) -> list[OpResult]:
    """Run ``cases`` random cases of ``op`` on every backend; TensorFlow runs once per case (and
    again in float64 where a backend disagrees with it, see ``arbitrate``)."""
    rng = np.random.default_rng([seed, zlib.crc32(op.encode()), 1])  # upstream gradients
    per_backend: dict[str, list[CaseResult]] = {b: [] for b in backends}
    for index, case in enumerate(make_cases(op, cases, seed)):
        if op == "dropout":
            for backend in backends:
                per_backend[backend].append(_guarded(index, case, check_dropout, index, case, backend, rng))
            continue
        tf = tf or import_tensorflow()
        shapes = [tuple(y.shape) for y in _outputs(case.reference(tf, *case.arrays))]  # from TensorFlow, not us
        dy = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
        dy = dy[0] if len(dy) == 1 else dy
        reference = tf_reference(tf, case, dy)
        float64 = functools.partial(_float64, tf, case, dy, [])  # computed when a backend first disagrees with TF
        for backend in backends:
            per_backend[backend].append(_guarded(index, case, _check, index, case, seed, backend, dy, reference, float64))
    return [_summarise(op, backend, results) for backend, results in per_backend.items()]


def _check(index: int, case: Case, seed: int, backend: str, dy: np.ndarray, reference, float64) -> CaseResult:
    """Compare ``backend``'s results with TF's; where they disagree, ``arbitrate`` with ``float64()``."""
    ours = miniconv_outputs(case, backend, dy)
    result = compare(index, case, ours, reference)
    if result.passed:
        return result
    return arbitrate(index, case, seed, result, ours, reference, *float64())


def _float64(tf, case: Case, dy: np.ndarray, memo: list):
    """(numpy backend in float64, TF in float64), remembered in ``memo``; (None, None) if either cannot run."""
    if not memo:
        try:
            memo[:] = float64_reference(case, dy), tf_reference(tf, case, dy, np.float64)
        except Exception:  # noqa: BLE001 - no arbiter: the disagreement stays a failure
            memo[:] = None, None
    return memo


def arbitrate(index: int, case: Case, seed: int, result: CaseResult, ours, reference, exact, tf_exact) -> CaseResult:
    """A case where miniconv (``ours``) and TF (``reference``) disagree: a TF finding if the two float64
    results agree with each other and with miniconv while TF's float32 result does not; else ``result``."""
    if exact is None:
        return result
    tf64 = compare(index, case, tf_exact, exact)
    against_exact = compare(index, case, ours, exact)
    tf32 = compare(index, case, reference, exact)
    if not (tf64.passed and against_exact.passed and not tf32.passed):
        return result
    against_exact.tf_finding = TfFinding(
        case.op, index, case.describe(), tf32.worst, tf32.rel_err, tf64.rel_err,
        f"miniconv.verify.make_cases({case.op!r}, {index + 1}, seed={seed})[{index}]: its .arrays, "
        f".kwargs and .reference(tf, *arrays) (TF_ENABLE_ONEDNN_OPTS={'1' if onednn_state() == 'on' else '0'})",
    )  # fmt: skip
    return against_exact


def _guarded(index: int, case: Case, check, *args) -> CaseResult:
    """``check(*args)``; a backend that raises fails the case with the exception as the reason."""
    try:
        return check(*args)
    except Exception as error:  # noqa: BLE001 - reported in the table, never swallowed silently
        why = f"{type(error).__name__}: {error}"
        return CaseResult(index, case.describe(), math.inf, tolerance(case.reduction), error=why)


def _summarise(op: str, backend: str, results: list[CaseResult]) -> OpResult:
    worst = max(results, key=lambda r: r.rel_err)
    failures = [r for r in results if not r.passed]
    findings = [r.tf_finding for r in results if r.tf_finding is not None]
    return OpResult(op, backend, len(results), worst.rel_err, worst.tolerance, not failures, failures, findings)


def verify(
    backends: list[str] | None = None, ops: list[str] | None = None, cases: int = 20, seed: int = 0,
    onednn: bool = False,
) -> list[OpResult]:
    """Every (op, backend) pair: TensorFlow cross-check results, ops in ``miniconv.nn.OPS`` order.

    ``onednn``: import TensorFlow with its oneDNN kernels on (if this process has not imported it yet).
    """
    backends = list(backends) if backends else usable_backends()
    ops = list(ops) if ops else list(nn.OPS)
    unknown = [op for op in ops if op not in nn.OPS]
    if unknown:
        raise ValueError(f"verify: unknown ops {unknown}; expected some of {list(nn.OPS)}")
    for backend in backends:
        get_backend(backend)  # fail before any work on a name that cannot load
    tf = import_tensorflow(onednn) if any(op != "dropout" for op in ops) else None
    results = []
    for op in ops:
        if op in GENERATORS:
            results += verify_op(op, backends, cases, seed, tf)
        else:  # a new op nobody wrote cases for is unverified, and says so
            missing = CaseResult(0, "", math.inf, 0.0, error="no case generator in miniconv/verify_cases.py")
            results += [OpResult(op, b, 0, math.inf, 0.0, False, [missing]) for b in backends]
    return results


def backend_status() -> dict[str, str | None]:
    """Every registered backend name -> None if it can run here, else the reason it cannot.

    Probes each name on its own, so one half-installed backend cannot hide the others.
    """
    from .backend import known_backends

    status: dict[str, str | None] = {}
    for name in known_backends():
        try:
            backend = get_backend(name)
            check = getattr(backend, "is_available", None)
            status[name] = None if check is None or check() else "its is_available() check is False"
        except Exception as error:  # noqa: BLE001 - the reason is shown to the user
            status[name] = f"{type(error).__name__}: {error}"
    return status


def usable_backends() -> list[str]:
    """Names of the backends that load and run here, in registry order."""
    return [name for name, reason in backend_status().items() if reason is None]


# --- the command line: ``miniconv verify`` -------------------------------------------------------

NOTES = (
    "rel err = max|miniconv - TF| / max(max|TF|, floor) over the output and every gradient (random dy);\n"
    "floor = 1e-30, or where results can cancel the size of one summed term (1; 1/4 for sigmoid and softmax);\n"
    "tolerance = 1e-5 * sqrt(L), L = the case's longest reduction; both shown for the case with the largest error.\n"
    "dropout: checked without TF (its random stream cannot match): y in {0, x/(1-rate)}, dx on the same mask,\n"
    "kept fraction within 5 sigma of 1 - rate.\n"
    "Where miniconv and TF disagree, the numpy backend and TF both in float64 arbitrate: if they agree with each other\n"
    "and with miniconv but not with TF's float32 result, the case is a finding about TF (rel err then against float64)."
)


def format_table(results: list[OpResult]) -> str:
    """A plain-text table, op x backend -> cases, max rel err, tolerance, result; failures below it."""
    header = ("op", "backend", "cases", "max rel err", "tolerance", "result")
    rows = [
        (
            r.op,
            r.backend,
            str(r.cases),
            f"{r.max_rel_err:.2e}",
            f"{r.tolerance:.2e}",
            "pass" if r.passed else f"FAIL ({len(r.failures)}/{r.cases})" if r.cases else "FAIL (no cases)",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    failures = [(r, f) for r in results for f in r.failures]
    if failures:
        out += ["", "failures:"]
        for r, f in failures:
            why = f.error or f"{f.worst} rel err {f.rel_err:.2e} > tolerance {f.tolerance:.2e}"
            if f.error and math.isfinite(f.rel_err):
                why += f" ({f.worst} rel err {f.rel_err:.2e})"
            out.append(f"  {r.op} [{r.backend}] case {f.index}: {f.description}: {why}")
    findings = tf_findings(results)
    if findings:
        out += ["", ("TensorFlow disagrees with the float64 reference (miniconv agrees): findings about TensorFlow, "
                     "not miniconv failures:")]
        for f in findings:
            backends = ", ".join(r.backend for r in results if any((g.op, g.index) == (f.op, f.index)
                                                                  for g in r.tf_findings))
            out.append(f"  {f.op} case {f.index}: {f.description}: TF's {f.worst} rel err {f.tf_rel_err:.2e} "
                       f"against the float64 reference; miniconv [{backends}] agrees with it, and so does TF in "
                       f"float64 ({f.tf64_rel_err:.2e})")
            out.append(f"    reproduce: {f.reproduce}")
    return "\n".join(out)


def tf_findings(results: list[OpResult]) -> list[TfFinding]:
    """The distinct TensorFlow findings of ``results`` (one per op and case, whichever backends saw it)."""
    seen: dict[tuple[str, int], TfFinding] = {}
    for r in results:
        for f in r.tf_findings:
            seen.setdefault((f.op, f.index), f)
    return list(seen.values())


def add_arguments(parser) -> None:
    """The ``miniconv verify`` options."""
    parser.add_argument(
        "--backend",
        "--backends",
        dest="backends",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="backends to check (repeat or comma-separate); default: every available one",
    )
    parser.add_argument("--cases", type=int, default=20, help="random cases per op (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    parser.add_argument("--ops", default=None, help="comma-separated ops to check (default: all of miniconv.nn.OPS)")
    parser.add_argument(
        "--onednn", choices=("off", "on"), default="off",
        help="TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, set before TF is imported); default off: "
             "TF 2.21's oneDNN conv2d gives wrong results for some strided cases",
    )  # fmt: skip


def run(args) -> int:
    """Print the table; 0 if every op passed, 1 if any failed, 2 for a usage or setup error."""
    status = backend_status()
    names = [n for item in args.backends or [] for n in item.split(",") if n] or usable_backends()
    names = list(dict.fromkeys(names))  # each backend once, in the order given
    for name in names:
        if name not in status:
            return _usage_error(f"unknown backend {name!r}; known backends: {', '.join(status)}")
        if status[name] is not None:
            usable = ", ".join(usable_backends()) or "none"
            return _usage_error(f"backend {name!r} is not available here ({status[name]}); available: {usable}")
    ops = [op for op in (args.ops or "").split(",") if op] or list(nn.OPS)
    unknown = [op for op in ops if op not in nn.OPS]
    if unknown:
        return _usage_error(f"unknown op(s) {', '.join(unknown)}; choose from: {', '.join(nn.OPS)}")
    if args.cases < 1:
        return _usage_error(f"--cases must be at least 1, got {args.cases}")
    uses_tf = any(op != "dropout" for op in ops)
    onednn = args.onednn == "on"
    try:
        if uses_tf:
            _one_tf_thread(import_tensorflow(onednn))
        results = verify(names, ops, args.cases, args.seed, onednn)
    except MissingDependencyError as error:
        return _usage_error(str(error))
    if uses_tf:
        state = onednn_state()
        note = "" if state == args.onednn else f" (asked for {args.onednn}, but TensorFlow was already imported)"
        tf_used = f"TensorFlow {import_tensorflow().__version__}, oneDNN {state}{note}"
    else:
        tf_used = "TensorFlow not used"
    print(f"miniconv verify: {args.cases} random cases per op, seed {args.seed}, {tf_used}\n")
    print(format_table(results))
    print("\n" + NOTES)
    failed = [r for r in results if not r.passed]
    findings = tf_findings(results)
    summary = f"{len(results) - len(failed)} of {len(results)} op x backend pairs passed"
    if findings:
        cases = ", ".join(f"{f.op} case {f.index}" for f in findings)
        summary += f"; TensorFlow disagreed with the float64 reference in {len(findings)} case(s) ({cases}), listed above"
    else:
        summary += "; no TensorFlow discrepancies"
    print(f"\n{summary}")
    return 1 if failed else 0


def _one_tf_thread(tf) -> None:
    """The cases are small, and TF's thread pool would fight Numba's (ARCHITECTURE.md): one TF thread."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised (e.g. by the tests): leave it as it is
        pass


def _usage_error(message: str) -> int:
    print(f"miniconv verify: error: {message}", file=sys.stderr)
    return 2
