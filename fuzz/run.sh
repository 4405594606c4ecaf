#!/usr/bin/env bash
# One bounded libFuzzer run (a meson test): from a copy of the checked-in
# corpus, with a fixed seed and run count, so CI repeats what was run before
# a commit (LKS_FUZZ_SEED=0 explores afresh); a crash, a hang over 5 s or a
# leak fails it. Usage: fuzz/run.sh FUZZER CORPUS_DIR RUNS
set -euo pipefail
fuzzer=$(realpath "$1") corpus_src=$2 runs=$3
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$corpus_src"/* "$corpus/"
cd "$corpus"
exec "$fuzzer" -seed="${LKS_FUZZ_SEED:-1}" -runs="$runs" -max_len=4096 -timeout=5 "$corpus"
