#!/usr/bin/env bash
# Adding a problem is one file and one registry row: this script adds `parabola` (parabola.rs
# beside it) to this checkout by copying the file into crates/bilevel-problems/src/ and inserting
# row.txt into the `config::problem_registry!` rows of lib.rs, checks that nothing else changed,
# then that
#   1. `bilevel list` shows it,
#   2. `bilevel run` solves it from a config ([problem] name = "parabola", HG-MS): x → x* = 1/a,
#   3. a bad value and a misspelt key in its [problem] table are reported (field named, line given),
#   4. the problem catalogue test (every registered problem builds with its defaults) passes,
# and restores the checkout on exit. Run from anywhere: crates/bilevel-problems/tests/new_problem/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
cd "$root"
lib=crates/bilevel-problems/src/lib.rs
file=crates/bilevel-problems/src/parabola.rs
if [ -e "$file" ] || ! git diff --quiet -- "$lib"; then
    echo "check.sh: $file exists or $lib has uncommitted changes; refusing to touch them" >&2
    exit 2
fi
work=$(mktemp -d)
cleanup() { rm -f "$file"; git checkout -q -- "$lib"; rm -rf "$work"; }
trap cleanup EXIT

# The two edits: one new file, one row.
before=$(git status --porcelain | sort)
cp "$here/parabola.rs" "$file"
python3 - "$lib" "$here/row.txt" <<'PY'
import sys
path, row = sys.argv[1], open(sys.argv[2]).read()
lines = open(path).read().split('\n')
start = lines.index('config::problem_registry! {')
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
entry=$(grep '^  parabola ' <<< "$listing") || { echo "bilevel list does not show parabola"; exit 1; }
echo "1. bilevel list: $entry"

cat > "$work/p.toml" <<'TOML'
[problem]
name = "parabola"
a = 4.0

[solver]
name = "hg-ms"

[budget]
max_iter = 300
TOML
"$bin" run "$work/p.toml" --out "$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
x=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])['x'][0])" "$work/run/trace.jsonl")
python3 -c "import sys; x=float(sys.argv[1]); assert abs(x - 0.25) < 1e-6, x" "$x" \
    || { echo "x = $x, expected x* = 1/a = 0.25"; exit 1; }
echo "2. bilevel run: x = $x (x* = 1/a = 0.25)"

sed 's/^a = 4.0/a = -1.0/' "$work/p.toml" > "$work/bad.toml"
if "$bin" run "$work/bad.toml" --out "$work/bad" > "$work/bad.log" 2>&1; then
    echo "a = -1 accepted"; exit 1
fi
grep -q 'problem.a' "$work/bad.log" || { cat "$work/bad.log"; echo "error does not name problem.a"; exit 1; }
sed 's/^a = 4.0/aa = 4.0/' "$work/p.toml" > "$work/typo.toml"
if "$bin" run "$work/typo.toml" --out "$work/typo" > "$work/typo.log" 2>&1; then
    echo "misspelt key accepted"; exit 1
fi
grep -q 'aa' "$work/typo.log" && grep -q 'toml:3' "$work/typo.log" \
    || { cat "$work/typo.log"; echo "error does not name aa at line 3"; exit 1; }
echo "3. config errors: $(head -1 "$work/bad.log") | $(head -1 "$work/typo.log")"

cargo test -q --locked -p bilevel-problems --test catalogue > "$work/catalogue.log" 2>&1 \
    || { cat "$work/catalogue.log"; exit 1; }
echo "4. catalogue test: $(grep 'test result' "$work/catalogue.log")"
echo "new problem: OK"
