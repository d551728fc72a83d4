#!/usr/bin/env bash
# Builds the ten Lambda artifacts the stack deploys and puts each in
# infra/dist/<function>.zip (a zip holding one executable named `bootstrap`,
# for the provided.al2023 runtime on arm64).
#
#   infra/build.sh
#
# cargo-lambda and zig come from the virtual environment infra/.venv, at the
# versions pinned in infra/requirements.txt (prebuilt wheels, nothing to
# compile), made by infra/tools.sh, the same one check.sh uses; the aarch64
# standard library comes from rustup. Environment:
#   LAMBDA_PROFILE  Cargo profile to build with (default `lambda`: fat LTO,
#                   opt-level "s", panic=abort, stripped; see Cargo.toml)
#   BUILD_NICE      nice level of the build (default 19: it shares the machine)
set -euo pipefail

infra="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$infra/.." && pwd)"
cd "$root"

profile="${LAMBDA_PROFILE:-lambda}"
nice_level="${BUILD_NICE:-19}"
target=aarch64-unknown-linux-gnu
# The deployed binaries, from infra/functions.json (the one list of the
# functions, with their memory and timeouts): one per WebSocket route (one
# for the three moderation routes), the stream consumer, the scheduled
# repair of sessions left open, the fan-out workers, and the $connect authorizer (deployed only
# with sign-in on, built always). (chat-local, the offline stack, is not
# deployed.) Serverless's `streamProcessor` is the binary `stream-processor`.
mapfile -t functions < <(python3 -c 'import json, sys
for key in json.load(open(sys.argv[1])):
    print("stream-processor" if key == "streamProcessor" else key)' "$infra/functions.json")

# shellcheck source=tools.sh
source "$infra/tools.sh"
infra_python_tools
cargo lambda --version

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
    echo "build.sh: adding the $target standard library"
    rustup target add "$target"
fi

started=$SECONDS
# Only the deployed packages: chat-handlers has the five route binaries, the
# repair and the authorizer, chat-stream-processor the stream consumer.
nice -n "$nice_level" cargo lambda build \
    --profile "$profile" \
    --arm64 \
    --output-format zip \
    --package chat-handlers \
    --package chat-stream-processor
echo "build.sh: cargo lambda build took $((SECONDS - started)) s (profile $profile)"

target_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
dist="$infra/dist"
mkdir -p "$dist"
for function in "${functions[@]}"; do
    zip="$target_dir/lambda/$function/bootstrap.zip"
    if [[ ! -f "$zip" ]]; then
        echo "build.sh: $zip was not produced" >&2
        exit 1
    fi
    # Each function gets its own file name: two artifacts both called
    # bootstrap.zip would collide on one key in the deployment bucket.
    cp "$zip" "$dist/$function.zip"
done

# Sizes, and a check that each zip holds an executable aarch64 ELF `bootstrap`.
python3 - "$dist" "${functions[@]}" <<'PY'
import stat
import sys
import zipfile
from pathlib import Path

dist = Path(sys.argv[1])
print(f"{'function':<18}{'zip bytes':>12}{'bootstrap bytes':>17}")
for function in sys.argv[2:]:
    path = dist / f"{function}.zip"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("bootstrap")
        mode = info.external_attr >> 16
        head = archive.read("bootstrap")[:20]
    if not mode & stat.S_IXUSR:
        sys.exit(f"build.sh: {path}: bootstrap is not executable (mode {oct(mode)})")
    # ELF magic, and e_machine 183 (EM_AARCH64), little-endian.
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183:
        sys.exit(f"build.sh: {path}: bootstrap is not an aarch64 ELF executable")
    print(f"{function:<18}{path.stat().st_size:>12}{info.file_size:>17}")
PY
echo "build.sh: artifacts in ${dist#"$root"/}/"
