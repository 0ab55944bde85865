#!/usr/bin/env python3
"""Cross-implementation check and speed ratio: `bilevel` against JAX (CPU, float64).

For each configuration this script

1. runs `bilevel hypergrad CONFIG --json --export DIR --repeat R`, which writes the exact data
   arrays the Rust oracles use (after splitting, standardisation, corruption), x, y0, the lower
   iterate y reached by the configured AID, our hypergradient, our exact reference grad phi, and
   median timings of one hypergradient and one full lower-level gradient;
2. re-implements the same objective in JAX (autodiff gradients, HVPs by forward-over-reverse,
   cross products by VJPs) and checks
   (a) the same algorithm from the same start (K warm-started gradient steps on y, Q conjugate-
       gradient iterations from zero, one cross product): JAX hypergradient vs ours;
   (b) the exact hypergradient: JAX solves the lower level itself (Newton-CG to
       ||grad_y g|| <= 1e-11, CG to 1e-13) and applies the implicit formula; vs our
       `reference_grad_phi` (our own Newton-CG and CG);
   both must agree to relative error <= 1e-6;
3. times, after jit compilation and warm-up, the same hypergradient algorithm and one full
   gradient (grad_x g, grad_y g) in JAX, median of R runs, and reports the ratio to our medians
   measured in the same run of this script.

Usage (from the repository root, after `cargo build --release -p bilevel-cli` and
`bilevel data fetch spambase fashion-mnist`):

    python3 -m venv .venv-jax && .venv-jax/bin/pip install "jax[cpu]" numpy
    .venv-jax/bin/python benchmarks/jax_check.py            # all configs in benchmarks/configs
    .venv-jax/bin/python benchmarks/jax_check.py benchmarks/configs/jax-regsel-spambase.toml

Exit status 1 if any agreement check fails. Writes a Markdown table to stdout and to
benchmarks/results/jax_check.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# Objectives (must match crates/bilevel-problems/src/ml; see docs/PROBLEMS.md §E)
# ---------------------------------------------------------------------------------------------


def make_regsel_logistic(arr, prob):
    """g = mean log(1 + exp(-t a^T y)) + 1/2 sum_j e^{x_j} y_j^2 ; f = mean val logistic loss."""
    A = jnp.asarray(arr["train_features"])
    t = jnp.asarray(arr["train_labels"])
    Av = jnp.asarray(arr["validation_features"])
    tv = jnp.asarray(arr["validation_labels"])

    def g(x, y):
        return jnp.mean(jnp.logaddexp(0.0, -t * (A @ y))) + 0.5 * jnp.sum(jnp.exp(x) * y * y)

    def f(x, y):
        return jnp.mean(jnp.logaddexp(0.0, -tv * (Av @ y)))

    return g, f


def _ce(logits, labels):
    return jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(
        logits, labels[:, None], axis=1
    )[:, 0]


def make_hyper_cleaning(arr, prob):
    """g = (1/n) sum_i w(x_i) CE(Y^T a_i, t_i) + r ||Y||^2 ; f = mean CE on validation."""
    A = jnp.asarray(arr["train_features"])
    t = jnp.asarray(arr["train_labels"]).astype(jnp.int32)
    Av = jnp.asarray(arr["validation_features"])
    tv = jnp.asarray(arr["validation_labels"]).astype(jnp.int32)
    p = A.shape[1]
    k = int(prob.get("classes", 0)) or int(max(np.max(arr["train_labels"]), np.max(arr["validation_labels"]))) + 1
    r = float(prob.get("reg", 0.2))
    kind = prob.get("weights", "sigmoid")
    w = jax.nn.sigmoid if kind == "sigmoid" else (lambda z: jnp.clip(z, 0.0, 1.0))

    def g(x, y):
        Y = y.reshape(p, k)
        return jnp.mean(w(x) * _ce(A @ Y, t)) + r * jnp.sum(Y * Y)

    def f(x, y):
        Y = y.reshape(p, k)
        return jnp.mean(_ce(Av @ Y, tv))

    return g, f


PROBLEMS = {"regsel-logistic": make_regsel_logistic, "hyper-cleaning": make_hyper_cleaning}


# ---------------------------------------------------------------------------------------------
# Hypergradient pieces
# ---------------------------------------------------------------------------------------------


def pieces(g, f):
    gy = jax.grad(g, argnums=1)

    def hvp(x, y, v):
        return jax.jvp(lambda yy: gy(x, yy), (y,), (v,))[1]

    def cross(x, y, v):
        # J v = d/dx <grad_y g(x, y), v>
        return jax.grad(lambda xx: jnp.vdot(gy(xx, y), v))(x)

    return gy, hvp, cross


def cg_fixed(matvec, b, iters):
    """Q iterations of conjugate gradients from zero (no early stop unless the residual is 0)."""

    def body(_, st):
        z, r, d, rr = st
        hd = matvec(d)
        dhd = jnp.vdot(d, hd)
        alpha = jnp.where(dhd > 0, rr / jnp.where(dhd > 0, dhd, 1.0), 0.0)
        z = z + alpha * d
        r = r - alpha * hd
        rr_new = jnp.vdot(r, r)
        beta = jnp.where(rr > 0, rr_new / jnp.where(rr > 0, rr, 1.0), 0.0)
        return z, r, r + beta * d, rr_new

    z0 = jnp.zeros_like(b)
    st = jax.lax.fori_loop(0, iters, body, (z0, b, b, jnp.vdot(b, b)))
    return st[0]


def make_aid(g, f, K, beta, Q):
    gy, hvp, cross = pieces(g, f)
    fx = jax.grad(f, argnums=0)
    fy = jax.grad(f, argnums=1)

    def hypergrad(x, y0):
        y = jax.lax.fori_loop(0, K, lambda _, yy: yy - beta * gy(x, yy), y0)
        v = cg_fixed(lambda d: hvp(x, y, d), fy(x, y), Q)
        return fx(x, y) - cross(x, y, v), y

    def at_y(x, y):
        v = cg_fixed(lambda d: hvp(x, y, d), fy(x, y), Q)
        return fx(x, y) - cross(x, y, v)

    return hypergrad, at_y


def exact_hypergrad(g, f, x, y0):
    """Newton-CG on the lower level to ||grad_y g|| <= 1e-11, then the implicit formula."""
    gy, hvp, cross = pieces(g, f)
    gy_j = jax.jit(gy)
    hvp_j = jax.jit(hvp)
    y = jnp.asarray(y0)
    for _ in range(100):
        grad = gy_j(x, y)
        if float(jnp.linalg.norm(grad)) <= 1e-11:
            break
        step, _ = jax.scipy.sparse.linalg.cg(lambda d: hvp_j(x, y, d), grad, tol=1e-13, maxiter=2000)
        y = y - step
    v, _ = jax.scipy.sparse.linalg.cg(
        lambda d: hvp_j(x, y, d), jax.grad(f, argnums=1)(x, y), tol=1e-13, maxiter=5000
    )
    h = jax.grad(f, argnums=0)(x, y) - cross(x, y, v)
    return np.asarray(h), float(jnp.linalg.norm(gy_j(x, y)))


def median_time(fn, repeats):
    out = fn()
    jax.block_until_ready(out)  # compile + warm-up
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))


# ---------------------------------------------------------------------------------------------


def check(config: Path, binary: Path, repeats: int):
    cfg = tomllib.loads(config.read_text())
    prob = cfg["problem"]
    solver = cfg["solver"]
    if solver.get("name") != "aid":
        raise SystemExit(f"{config}: [solver] must be aid (the algorithm this script re-implements)")
    K = int(solver["lower_steps"])
    beta = float(solver["lower_lr"])
    Q = int(solver["hypergradient"]["max_iter"])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(binary), "hypergrad", str(config), "--json", "--export", tmp, "--repeat", str(repeats)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            return {"config": config.name, "error": res.stderr.strip() or res.stdout.strip()}
        ours = json.loads(res.stdout)
        arr = {p.stem: np.load(p) for p in Path(tmp).glob("*.npy")}
    g, f = PROBLEMS[prob["name"]](arr, prob)
    x = jnp.asarray(arr["x"])
    y0 = jnp.asarray(arr["y0"])
    hyper, at_y = make_aid(g, f, K, beta, Q)
    hyper_j = jax.jit(hyper)
    at_y_j = jax.jit(at_y)
    # (a) same algorithm: first the hypergradient at our y (isolates the CG + cross product),
    # then the whole algorithm from y0.
    h_at_y = np.asarray(at_y_j(x, jnp.asarray(arr["y"])))
    h_full, y_jax = hyper_j(x, y0)
    err_at_y = rel(h_at_y, arr["hypergradient"])
    err_full = rel(np.asarray(h_full), arr["hypergradient"])
    err_y = rel(np.asarray(y_jax), arr["y"])
    # (b) exact hypergradients, independent inner solves.
    err_exact = None
    gap = None
    if "reference_grad_phi" in arr:
        h_exact, gap = exact_hypergrad(g, f, x, arr["y"])
        err_exact = rel(h_exact, arr["reference_grad_phi"])
    # timing
    gboth = jax.jit(jax.grad(g, argnums=(0, 1)))
    t_grad = median_time(lambda: gboth(x, y0), repeats)
    t_hyper = median_time(lambda: hyper_j(x, y0), repeats)
    timing = ours.get("timing") or {}
    row = {
        "config": config.name,
        "problem": prob["name"],
        "n_train": int(arr["train_features"].shape[0]),
        "p": int(arr["train_features"].shape[1]),
        "dim_x": int(x.shape[0]),
        "dim_y": int(y0.shape[0]),
        "K": K,
        "Q": Q,
        "err_same_algorithm": err_full,
        "err_at_our_y": err_at_y,
        "err_lower_iterate": err_y,
        "err_exact": err_exact,
        "jax_lower_gap": gap,
        "jax_gradient_ms": 1e3 * t_grad,
        "ours_gradient_ms": 1e3 * timing.get("gradient_s", float("nan")),
        "jax_hypergradient_ms": 1e3 * t_hyper,
        "ours_hypergradient_ms": 1e3 * timing.get("hypergradient_s", float("nan")),
    }
    row["ok"] = err_full <= TOL and err_at_y <= TOL and (err_exact is None or err_exact <= TOL)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", type=Path)
    ap.add_argument("--bilevel", type=Path, default=ROOT / "target/release/bilevel")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/jax_check.md")
    a = ap.parse_args()
    configs = a.configs or sorted((ROOT / "benchmarks/configs").glob("jax-*.toml"))
    if not a.bilevel.exists():
        raise SystemExit(f"{a.bilevel} not found: run `cargo build --release -p bilevel-cli` first")
    rows = [check(c, a.bilevel, a.repeat) for c in configs]
    lines = [
        f"JAX {jax.__version__} on {jax.devices()[0].platform}, float64, median of {a.repeat} "
        "after warm-up; ratio = JAX time / bilevel time (higher: bilevel faster).",
        "",
        "| config | n × p | dim x / dim y | rel. err same algorithm (K, Q) | rel. err exact ∇φ "
        "| full gradient JAX / ours (ms) | ratio | hypergradient JAX / ours (ms) | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    failed = False
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error'][:200]} | | | | | | | |")
            failed = True
            continue
        failed |= not r["ok"]
        ex = "—" if r["err_exact"] is None else f"{r['err_exact']:.1e}"
        lines.append(
            f"| {r['config']} | {r['n_train']} × {r['p']} | {r['dim_x']} / {r['dim_y']} "
            f"| {r['err_same_algorithm']:.1e} ({r['K']}, {r['Q']}) | {ex} "
            f"| {r['jax_gradient_ms']:.3f} / {r['ours_gradient_ms']:.3f} "
            f"| {r['jax_gradient_ms'] / r['ours_gradient_ms']:.1f}× "
            f"| {r['jax_hypergradient_ms']:.2f} / {r['ours_hypergradient_ms']:.2f} "
            f"| {r['jax_hypergradient_ms'] / r['ours_hypergradient_ms']:.1f}× |"
        )
    text = "\n".join(lines)
    print(text)
    print(json.dumps(rows, indent=1), file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
