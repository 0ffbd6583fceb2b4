#!/usr/bin/env bash
# Mutation testing (issue 14): mutmut mutates the modules whose numbers users read and runs the
# fast unit tests that cover them (setup.cfg [mutmut]); a mutant the tests do not notice is a
# number that could go wrong unseen. Not part of CI. Prints the survivors, then
#   mutation score: NN % killed (K of M)
# where M counts every mutant, the ones no test reaches included.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
.venv/bin/uv pip install --quiet --python .venv/bin/python "mutmut==3.8.1"
rm -rf mutants  # a fresh copy: mutmut otherwise keeps results for functions it thinks unchanged
.venv/bin/mutmut run --max-children "${MUTMUT_CHILDREN:-2}" > mutation-run.log 2>&1 || {
  tail -n 40 mutation-run.log >&2
  exit 1
}
.venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, sys
status = collections.Counter()
for line in sys.stdin:
    name, _, outcome = line.strip().rpartition(": ")
    if name:
        status[outcome] += 1
        if outcome != "killed":
            print(f"{outcome:>10}  {name}")
total = sum(status.values())
print(", ".join(f"{n} {s}" for s, n in status.most_common()))
killed = status["killed"]
print(f"mutation score: {100 * killed / total:.0f} % killed ({killed} of {total})")
'
