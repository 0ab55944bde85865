#!/usr/bin/env python3
"""Cost of HG-MS's correctness checks, side by side in one run.

    python3 benchmarks/checks_cost.py AFTER_BIN [BEFORE_BIN] [--repeat N] [--iterations T]

For each config in benchmarks/configs/checks-*.toml, runs `bilevel hypergrad CONFIG --json
--repeat N` with AFTER_BIN at its defaults (checks = "second-order"), with AFTER_BIN and
checks = "first-order", and (optionally) with a BEFORE_BIN built from an earlier commit, and
prints gradient-equivalents (algorithm oracle calls, weights ½/1/2) and the median time of one
hypergradient, with ratios to the first-order run. Then the same three variants as a run of T
outer iterations (`bilevel run`, default T = 50; the second-order check runs at the first
iteration and every 10th): total gradient-equivalents and solver time.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ["checks-circle-center.toml", "checks-affine.toml", "checks-spambase.toml"]


def ge(counts):
    return 0.5 * (counts["f_value"] + counts["g_value"]) + counts["grad_f"] + counts["grad_g"] + 2.0 * (
        counts["hvp"] + counts["cross"]
    )


def run(binary, config, repeat):
    out = subprocess.run(
        [binary, "hypergrad", config, "--json", "--repeat", str(repeat)],
        capture_output=True,
        text=True,
    )
    if out.returncode not in (0, 3):
        return None, out.stderr.strip()
    j = json.loads(out.stdout)
    return j, None


def variants(after, before, first_order_cfg, default_cfg):
    """(label, binary, config) of the compared runs: the previous binary (if given), then the new
    one with first-order and with the default second-order checks."""
    out = [("first-order checks", after, first_order_cfg), ("second-order checks (default)", after, default_cfg)]
    if before:
        out.insert(0, ("before (previous defaults)", before, default_cfg))
    return out


def first_order(text):
    """The config text with `checks = "first-order"` added to its [solver] table."""
    return text.replace('name = "hg-ms"', 'name = "hg-ms"\nchecks = "first-order"')


def run_total(binary, config, out):
    res = subprocess.run([binary, "run", config, "--out", out], capture_output=True, text=True)
    try:
        s = json.load(open(os.path.join(out, "summary.json")))
    except OSError:
        return None, res.stderr.strip()
    if s.get("status") != "completed":
        return None, s.get("error")
    return s, None


def main():
    argv = sys.argv[1:]
    opts = {}
    for key in ("--repeat", "--iterations"):
        if key in argv:
            i = argv.index(key)
            opts[key] = int(argv[i + 1])
            del argv[i : i + 2]
    args = argv
    repeat = opts.get("--repeat", 11)
    iterations = opts.get("--iterations", 50)
    if not args:
        print(__doc__)
        sys.exit(2)
    after = args[0]
    before = args[1] if len(args) > 1 else None
    tmp = tempfile.mkdtemp()
    print(f"| workload | variant | gradient-equivalents | time per hypergradient (ms) | ge ratio | time ratio | relative error | warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for name in CONFIGS:
        path = os.path.join(HERE, "configs", name)
        text = open(path).read()
        first = os.path.join(tmp, "first-" + name)
        with open(first, "w") as f:
            f.write(first_order(text))
        rows = []
        for label, binary, cfg in variants(after, before, first, path):
            j, err = run(binary, cfg, repeat)
            if j is None:
                rows.append((label, None, None, None, None, err))
                continue
            rows.append(
                (
                    label,
                    ge(j["oracle_calls"]),
                    1e3 * j["timing"]["hypergradient_s"],
                    j.get("relative_error"),
                    len(j.get("warnings", [])),
                    None,
                )
            )
        base = next((r for r in rows if r[0] == "first-order checks" and r[1] is not None), None)
        for label, g, t, err, w, msg in rows:
            if g is None:
                print(f"| {name} | {label} | — | — | — | — | — | failed: {msg} |")
                continue
            gr = f"{g / base[1]:.2f}" if base else "—"
            tr = f"{t / base[2]:.2f}" if base else "—"
            e = "—" if err is None else f"{err:.1e}"
            print(f"| {name} | {label} | {g:.0f} | {t:.3f} | {gr} | {tr} | {e} | {w} |")
    print()
    print(f"Runs of {iterations} outer iterations (upper lr 0.1, diagnostics off):")
    print()
    print("| workload | variant | gradient-equivalents | solver time (s) | ge ratio | time ratio | final ‖h − ∇φ‖/‖∇φ‖ | warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for name in CONFIGS:
        text = open(os.path.join(HERE, "configs", name)).read()
        text += f"\n[budget]\nmax_iter = {iterations}\n\n[output]\ndiagnostics_every = 0\ncheckpoint_every = 0\nplot = false\n"
        second = os.path.join(tmp, "run-" + name)
        with open(second, "w") as f:
            f.write(text)
        first = os.path.join(tmp, "run-first-" + name)
        with open(first, "w") as f:
            f.write(first_order(text))
        rows = []
        for k, (label, binary, cfg) in enumerate(variants(after, before, first, second)):
            s, err = run_total(binary, cfg, os.path.join(tmp, f"out-{name}-{k}"))
            rows.append((label, s, err))
        base = next((s for label, s, _ in rows if label == "first-order checks" and s), None)
        for label, s, err in rows:
            if s is None:
                print(f"| {name} | {label} | — | — | — | — | — | failed: {err} |")
                continue
            g, t = s["gradient_equivalents"], s["time_s"]
            e = (s.get("last") or {}).get("grad_phi_rel_error")
            gr = f"{g / base['gradient_equivalents']:.2f}" if base else "—"
            tr = f"{t / base['time_s']:.2f}" if base and base["time_s"] > 0 else "—"
            w = len(s.get("warnings", []))
            es = "—" if e is None else f"{e:.1e}"
            print(f"| {name} | {label} | {g:.0f} | {t:.4f} | {gr} | {tr} | {es} | {w} |")


if __name__ == "__main__":
    main()
