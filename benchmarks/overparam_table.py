#!/usr/bin/env python3
"""Over-parameterised lower levels: the optimistic selection (HG-MS) against the gradient-descent
selection (AID, ITD), from the records of `bilevel bench configs/bench-overparam.toml`.

    python3 benchmarks/overparam_table.py out/bench-overparam

For each problem and solver configuration, over seeds (median [min, max]) at the final record:
f at the solver's point (the validation objective of the selected lower solution), the lower-level
gradient norm there, the exact φ(x) (the optimistic value: min of f over the solution set S(x)),
f at the min-norm (gradient-descent) selection for the final x, and the test accuracy at the
solver's point. Standard library only.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def cell(v, fmt="{:.4f}"):
    v = [x for x in v if x is not None]
    if not v:
        return "—"
    return f"{fmt.format(statistics.median(v))} [{fmt.format(min(v))}, {fmt.format(max(v))}]"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/bench-overparam")
    last = {}
    for line in (out / "records.jsonl").open():
        r = json.loads(line)
        key = (r["problem"], r["label"], json.dumps(r.get("params") or {}, sort_keys=True), r["seed"])
        last[key] = r
    groups = defaultdict(list)
    for (prob, label, params, _seed), r in last.items():
        groups[(prob, label, params)].append(r)
    print("| problem | solver | params | seeds | f at the solver's point | ‖∇_y g‖ there | φ(x) optimistic (exact) "
          "| f at GD (min-norm) selection | test accuracy at the solver's point |")
    print("|---|---|---|---|---|---|---|---|---|")
    # A run that stopped before the last iteration reached by any run of its problem diverged
    # (bench keeps the records up to the failure).
    last_iter = defaultdict(int)
    for (prob, _label, _params, _seed), r in last.items():
        last_iter[prob] = max(last_iter[prob], r["iteration"])
    for (prob, label, params), rs in sorted(groups.items()):
        p = json.loads(params)
        ptxt = ", ".join(f"{k}={v}" for k, v in p.items()) or "—"
        finite = [r for r in rs if r["f"] is not None and r["iteration"] == last_iter[prob]]
        note = "" if len(finite) == len(rs) else f" ({len(rs) - len(finite)} diverged)"
        print(
            f"| {prob} | {label} | {ptxt} | {len(rs)}{note} | {cell([r['f'] for r in finite])} "
            f"| {cell([r['lower_gap'] for r in finite], '{:.1e}')} "
            f"| {cell([r.get('phi_optimistic') for r in rs])} | {cell([r.get('phi_min_norm') for r in rs])} "
            f"| {cell([r.get('test_accuracy') for r in finite], '{:.3f}')} |"
        )


if __name__ == "__main__":
    main()
