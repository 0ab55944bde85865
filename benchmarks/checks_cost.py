#!/usr/bin/env python3
"""Cost of HG-MS's correctness checks, side by side in one run.

    python3 benchmarks/checks_cost.py AFTER_BIN [BEFORE_BIN] [--repeat N]

For each config in benchmarks/configs/checks-*.toml, runs `bilevel hypergrad CONFIG --json
--repeat N` with AFTER_BIN at its defaults (checks = "second-order"), with AFTER_BIN and
checks = "first-order", and (optionally) with a BEFORE_BIN built from an earlier commit, in
alternating rounds, and prints gradient-equivalents (algorithm oracle calls, weights ½/1/2) and
the median time of one hypergradient, with ratios to the first-order run.
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


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeat = 11
    if "--repeat" in sys.argv:
        repeat = int(sys.argv[sys.argv.index("--repeat") + 1])
        args = [a for a in args if a != str(repeat)]
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
            f.write(text.replace('name = "hg-ms"', 'name = "hg-ms"\nchecks = "first-order"'))
        variants = [("first-order checks", after, first), ("second-order checks (default)", after, path)]
        if before:
            variants.insert(0, ("before (previous defaults)", before, path))
        rows = []
        for label, binary, cfg in variants:
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


if __name__ == "__main__":
    main()
