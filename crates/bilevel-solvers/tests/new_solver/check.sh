#!/usr/bin/env bash
# Adding a solver is one file and one registry row: this script adds GD-AID (gd_aid.rs beside it)
# to this checkout by copying the file into crates/bilevel-solvers/src/ and inserting row.txt into
# the `solver_registry!` rows of lib.rs, checks that nothing else changed, then that
#   1. `bilevel list` shows it,
#   2. `bilevel run` runs it from a config (quadratic problem, [solver] name = "gd-aid"),
#   3. a bad value and a misspelt key in its [solver] table are reported (field named, line given),
#   4. the catalogue test (every registered solver: defaults, TOML round trip, two iterations,
#      exact resume) passes with it,
# and restores the checkout on exit. Run from anywhere: crates/bilevel-solvers/tests/new_solver/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
cd "$root"
lib=crates/bilevel-solvers/src/lib.rs
file=crates/bilevel-solvers/src/gd_aid.rs
if [ -e "$file" ] || ! git diff --quiet -- "$lib"; then
    echo "check.sh: $file exists or $lib has uncommitted changes; refusing to touch them" >&2
    exit 2
fi
work=$(mktemp -d)
cleanup() { rm -f "$file"; git checkout -q -- "$lib"; rm -rf "$work"; }
trap cleanup EXIT

# The two edits: one new file, one row.
before=$(git status --porcelain | sort)
cp "$here/gd_aid.rs" "$file"
python3 - "$lib" "$here/row.txt" <<'PY'
import sys
path, row = sys.argv[1], open(sys.argv[2]).read()
lines = open(path).read().split('\n')
start = lines.index('solver_registry! {')
end = next(i for i in range(start, len(lines)) if lines[i] == '}')
lines[end:end] = row.rstrip('\n').split('\n')
open(path, 'w').write('\n'.join(lines))
PY
changed=$(comm -13 <(echo "$before") <(git status --porcelain | sort))
expected=$(printf ' M %s\n?? %s\n' "$lib" "$file" | sort)
[ "$changed" = "$expected" ] || { echo "unexpected changes:"; echo "$changed"; exit 1; }
echo "edits: $(git diff --numstat -- "$lib" | cut -f1) lines added to lib.rs, one new file"

cargo build -q --locked -p bilevel-cli
bin=target/debug/bilevel
listing=$("$bin" list)
entry=$(grep '^  gd-aid ' <<< "$listing") || { echo "bilevel list does not show gd-aid"; exit 1; }
echo "1. bilevel list: $entry"

cat > "$work/gd.toml" <<'TOML'
[problem]
name = "quadratic"
n_inner = 64
n_outer = 64
dim_x = 5
dim_y = 8

[solver]
name = "gd-aid"
lr = 0.5

[budget]
max_iter = 200
TOML
"$bin" run "$work/gd.toml" --out "$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
[ -s "$work/run/trace.jsonl" ] || { echo "no trace written"; exit 1; }
echo "2. bilevel run: $(wc -l < "$work/run/trace.jsonl") records in trace.jsonl"

sed 's/^lr = 0.5/lr = -1.0/' "$work/gd.toml" > "$work/bad.toml"
if "$bin" run "$work/bad.toml" --out "$work/bad" > "$work/bad.log" 2>&1; then
    echo "lr = -1 accepted"; exit 1
fi
grep -q 'solver.lr' "$work/bad.log" || { cat "$work/bad.log"; echo "error does not name solver.lr"; exit 1; }
sed 's/^lr = 0.5/lrr = 0.5/' "$work/gd.toml" > "$work/typo.toml"
if "$bin" run "$work/typo.toml" --out "$work/typo" > "$work/typo.log" 2>&1; then
    echo "misspelt key accepted"; exit 1
fi
grep -q 'lrr' "$work/typo.log" && grep -q '10' "$work/typo.log" \
    || { cat "$work/typo.log"; echo "error does not name lrr at line 10"; exit 1; }
echo "3. config errors: $(head -1 "$work/bad.log") | $(head -1 "$work/typo.log")"

cargo test -q --locked -p bilevel-solvers --test catalogue > "$work/catalogue.log" 2>&1 \
    || { cat "$work/catalogue.log"; exit 1; }
echo "4. catalogue test: $(grep 'test result' "$work/catalogue.log")"
echo "new solver: OK"
