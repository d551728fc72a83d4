#!/usr/bin/env bash
# Fuzzes the chat's input parsing with libFuzzer on the stable toolchain: each
# `cargo fuzz` target for N seconds (default 30), starting from the seeds in
# fuzz/corpus/<target>/. Exits non-zero on a crash; the input is then in
# fuzz/artifacts/<target>/ and cargo-fuzz prints how to reproduce it.
# docs/security.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# `-s none`: sanitizers need nightly, and this code has no `unsafe` to check;
# libFuzzer's coverage instrumentation works on stable.
cargo fuzz build -s none
for target in $(cargo fuzz list); do
  echo "==== fuzz target $target, ${seconds} s"
  cargo fuzz run -s none "$target" -- \
    -max_total_time="$seconds" -dict="$PWD/$target.dict" -print_final_stats=1
done
