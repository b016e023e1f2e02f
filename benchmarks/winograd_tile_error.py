"""Winograd's float32 rounding error by tile size: F(2x2, 3x3), which miniconv runs, F(3x3, 3x3) and F(4x4, 3x3).

    python -m benchmarks.winograd_tile_error [--trials 300]

A NumPy model of the forward pass, y = A^T [(G g G^T) * (B^T d B)] A per tile (Lavin & Gray 2015),
every transform and product in float32, against the direct sum in float64. Printed per tile size:

- on the course layers' 3x3 convolutions (a few images, ReLU-like and uniform inputs): max |error|
  / max |result|;
- over ``--trials`` random small cases (uniform x and w in [-1, 1], 16-40 channels, 3-11 cells a
  side): the worst |error| / (4 eps32 sqrt(9 C) sum|terms|) of an element, the tolerance the
  property tests hold every element to (below 1 passes).

F(3x3) needs 25 / 9 = 2.78 multiplies an output and F(4x4) 2.25, against F(2x2)'s 4; their
transforms have entries up to 4 and 1/6 (F(3x3), points 0, 1, -1, 2 and infinity) and up to 8 and
1/24 (F(4x4)), which is where their larger errors come from. No miniconv code runs here: this decides
whether a tile size is worth building (docs/benchmarks.md).

With TensorFlow installed, ``tf.nn.conv2d`` (the spec the property tests compare against) is measured on
the same arrays, so each tile size's error can be read against the reference's own: on 2026-12-07 (TF
2.21, oneDNN, AMD EPYC) TF's max |error| was 1.5-3x F(2x2)'s and a fifth to a ninth of F(4x4)'s.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

# (B^T, G, A^T) of F(m x m, 3 x 3): input transform (a x a, a = m + 2), filter transform (a x 3), output (m x a)
TILES = {
    "F(2x2, 3x3)": (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    "F(3x3, 3x3)": (
        [[2, -1, -2, 1, 0], [0, -2, -1, 1, 0], [0, 2, -3, 1, 0], [0, -1, 0, 1, 0], [0, 2, -1, -2, 1]],
        [[1 / 2, 0, 0], [-1 / 2, -1 / 2, -1 / 2], [-1 / 6, 1 / 6, -1 / 6], [1 / 6, 1 / 3, 2 / 3], [0, 0, 1]],
        [[1, 1, 1, 1, 0], [0, 1, -1, 2, 0], [0, 1, 1, 4, 1]],
    ),
    "F(4x4, 3x3)": (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}
COURSE_LAYERS = {"mnist/conv2": (8, 13, 32, 64), "cats/conv2": (4, 74, 32, 64), "cats/conv3": (4, 36, 64, 128),
                 "cats/conv4": (4, 17, 128, 128)}  # (N, H = W, C, K), VALID


def winograd_forward(x, w, tile):
    """y (N, H - 2, W - 2, K) of a VALID 3x3 convolution by ``tile``'s transforms, in x's dtype."""
    BT, G, AT = (np.asarray(matrix, np.float64).astype(x.dtype) for matrix in TILES[tile])
    m, a = AT.shape
    N, H, W, C = x.shape
    P, Q = H - 2, W - 2
    Pt, Qt = -(-P // m), -(-Q // m)
    padded = np.zeros((N, Pt * m + 2, Qt * m + 2, C), x.dtype)
    padded[:, :H, :W] = x
    rows = np.arange(Pt)[:, None] * m + np.arange(a)
    cols = np.arange(Qt)[:, None] * m + np.arange(a)
    d = padded[:, rows][:, :, :, cols].transpose(0, 1, 3, 2, 4, 5)  # (N, Pt, Qt, a, a, C)
    V = np.einsum("ij,npqjlc,kl->npqikc", BT, d, BT, optimize=True)
    U = np.einsum("ij,jlcf,kl->ikcf", G, w, G, optimize=True)
    M = np.einsum("npqijc,ijcf->npqijf", V, U, optimize=True)
    Y = np.einsum("ai,npqijf,bj->npqabf", AT, M, AT, optimize=True)
    return Y.transpose(0, 1, 3, 2, 4, 5).reshape(N, Pt * m, Qt * m, -1)[:, :P, :Q]


def direct(x, w):
    """(y, sum of |terms|) in float64, the 3x3 VALID convolution as nine shifted products."""
    _, H, W, _ = x.shape
    P, Q = H - 2, W - 2
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = sum(x64[:, r:r + P, s:s + Q] @ w64[r, s] for r in range(3) for s in range(3))
    terms = sum(np.abs(x64[:, r:r + P, s:s + Q]) @ np.abs(w64[r, s]) for r in range(3) for s in range(3))
    return y, terms


def glorot(rng, C, K):
    limit = np.sqrt(6 / (9 * C + 9 * K))
    return rng.uniform(-limit, limit, (3, 3, C, K)).astype(np.float32)


def tensorflow_conv2d():
    """{"tf.nn.conv2d": fn(x, w) -> VALID stride-1 result as float32 NumPy}, or {} without TensorFlow."""
    try:
        import tensorflow as tf
    except ImportError:
        return {}
    return {"tf.nn.conv2d": lambda x, w: tf.nn.conv2d(x, w, 1, "VALID").numpy()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.winograd_tile_error", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="random small cases (default 300)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    methods = {tile: (lambda x, w, _tile=tile: winograd_forward(x, w, _tile)) for tile in TILES}
    methods.update(tensorflow_conv2d())
    print("max |error| / max |result| on the course layers (ReLU-like inputs; uniform in [-1, 1]):")
    for name, (N, H, C, K) in COURSE_LAYERS.items():
        w = glorot(rng, C, K)
        inputs = (np.maximum(rng.standard_normal((N, H, H, C)), 0).astype(np.float32),
                  rng.uniform(-1, 1, (N, H, H, C)).astype(np.float32))
        cells = []
        for method, run in methods.items():
            errors = []
            for x in inputs:
                y, _ = direct(x, w)
                errors.append(np.abs(run(x, w) - y).max() / np.abs(y).max())
            cells.append(f"{method} {errors[0]:.1e}; {errors[1]:.1e}")
        print(f"  {name:12s} " + " | ".join(cells))
    worst = dict.fromkeys(methods, 0.0)
    eps = float(np.finfo(np.float32).eps)
    for _ in range(args.trials):
        N, side, C, K = (int(v) for v in (rng.integers(1, 3), rng.integers(3, 12), rng.integers(16, 41), rng.integers(16, 41)))
        x = rng.uniform(-1, 1, (N, side, side, C)).astype(np.float32)
        w = rng.uniform(-1, 1, (3, 3, C, K)).astype(np.float32)
        y, terms = direct(x, w)
        tolerance = 4 * eps * np.sqrt(9 * C) * terms
        for method, run in methods.items():
            worst[method] = max(worst[method], float((np.abs(run(x, w) - y) / tolerance).max()))
    print(f"worst |error| / (4 eps32 sqrt(9 C) sum|terms|) over {args.trials} random cases (below 1 passes the tests):")
    print("  " + " | ".join(f"{method} {ratio:.3f}" for method, ratio in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
