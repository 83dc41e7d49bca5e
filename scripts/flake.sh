#!/usr/bin/env bash
# Runs the compliant baseline N times in a row and reports every check whose verdict changed.
#   scripts/flake.sh [N] [extra hilt run args...]   (make flake N=50; make flake-qemu N=5)
set -euo pipefail
n=${1:-50}; shift || true
bin=${HILT:-bin/hilt}
dir=$(mktemp -d -t hilt-flake.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for i in $(seq 1 "$n"); do
  t0=$(date +%s%N)
  rc=0; "$bin" run --out "$dir/run-$i" "$@" >"$dir/run-$i.log" 2>&1 || rc=$?
  echo "run $i/$n: exit $rc in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
python3 - "$dir" "$n" <<'PY'
import json, sys, collections
d, n = sys.argv[1], int(sys.argv[2])
seen = collections.defaultdict(collections.Counter)
for i in range(1, n + 1):
    try:
        c = json.load(open(f"{d}/run-{i}/compliance.json"))
    except OSError:
        seen["(run)"]["no report"] += 1
        continue
    for chk in c["checks"]:
        seen[f'{chk["device"]} {chk["id"]}'][chk["verdict"]] += 1
flaky = {k: v for k, v in seen.items() if len(v) > 1}
print(f"{n} runs, {len(seen)} device checks, {len(flaky)} changed verdict")
for k, v in sorted(flaky.items()):
    print(f"  FLAKY {k}: {dict(v)}")
sys.exit(1 if flaky else 0)
PY
