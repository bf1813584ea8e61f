#!/usr/bin/env bash
# Run the fuzz targets (tests/fuzz, proptest property tests; docs/security.md "Fuzzing") for a
# fixed wall time each and report the cases run and any failure.
#
#   scripts/fuzz.sh [-s SECONDS] [-j JOBS] [--release] [TARGET...]
#
# -s  seconds per target (default 300, or $FUZZ_SECONDS)
# -j  targets run at once (default 2, or $FUZZ_JOBS)
# --release  build with the release profile (a separate full build; the test profile already
#            optimises every dependency, so it gains little)
# TARGET  any of: params scope redirect basic_auth pkce jwt assertion jwks registration
#
# A failing case is shrunk, reported with its minimal input, and its seed appended to
# tests/fuzz/regressions/<target>-<property>.txt, which every later run (and `cargo test`)
# replays first: commit that file with the fix. Logs: target/fuzz-logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-300}"
jobs="${FUZZ_JOBS:-2}"
profile=()
targets=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -s) seconds="$2"; shift 2 ;;
    -j) jobs="$2"; shift 2 ;;
    --release) profile=(--release); shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(params scope redirect basic_auth pkce jwt assertion jwks registration)

# Build once; cargo prints the test binary's path.
bin="$(cargo test --locked "${profile[@]}" --test fuzz --no-run 2>&1 | tee /dev/stderr \
  | sed -n 's/.*Executable tests\/fuzz\/main.rs (\(.*\))$/\1/p' | tail -n1)"
[ -x "$bin" ] || { echo "could not find the fuzz test binary" >&2; exit 1; }

logs=target/fuzz-logs
mkdir -p "$logs"
echo "replaying the seed corpus and saved failures"
"$bin" corpus_replays --test-threads 2 -q

run() {
  local target="$1"
  VALET_FUZZ_SECONDS="$seconds" "$bin" --exact "$target::fuzz" --nocapture --test-threads 1 \
    >"$logs/$target.log" 2>&1
}

echo "fuzzing ${targets[*]}: ${seconds} s each, ${jobs} at a time"
declare -A pids
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run "$target" &
  pids[$target]=$!
done

failed=()
for target in "${targets[@]}"; do
  if ! wait "${pids[$target]}"; then failed+=("$target"); fi
done

echo
printf '%-14s %12s %9s %10s  %s\n' target cases seconds cases/s result
for target in "${targets[@]}"; do
  line="$(grep -E "^fuzz $target: " "$logs/$target.log" || true)"
  if [ -n "$line" ]; then
    read -r cases secs rate <<<"$(sed -E 's/^fuzz [a-z_]+: ([0-9]+) cases in ([0-9.]+) s \(([0-9]+)\/s\).*/\1 \2 \3/' <<<"$line")"
    printf '%-14s %12s %9s %10s  %s\n' "$target" "$cases" "$secs" "$rate" "0 failures"
  else
    printf '%-14s %12s %9s %10s  %s\n' "$target" - - - "FAILED (see $logs/$target.log)"
  fi
done
files=()
for target in "${targets[@]}"; do files+=("$logs/$target.log"); done
echo
grep -ohE "fuzz [a-z_]+/[a-z0-9_]+: .*" "${files[@]}" || true

if [ "${#failed[@]}" -gt 0 ]; then
  echo
  for target in "${failed[@]}"; do
    echo "== $target"
    grep -A40 -E "^fuzz target $target|minimal failing input" "$logs/$target.log" | head -60
  done
  git status --short tests/fuzz/regressions
  exit 1
fi
