#!/usr/bin/env bash
# Checks the AWS deployment offline, as CI does: no AWS account is needed or
# reached. Stops at the first failure (non-zero exit); each step prints a
# header and how long it took.
#
#   1. tools     Node (Debian's nodejs/npm if missing), the pinned Serverless
#                CLI (npm ci), and a Python venv in infra/.venv with
#                requirements.txt (cargo-lambda, zig, cfn-lint, pytest)
#   2. build     infra/build.sh: the five arm64 zips in infra/dist/
#   3. package   `serverless package` with dummy credentials, inside an empty
#                network namespace when the machine allows one (proof that it
#                calls nothing), writing infra/.serverless/*.json
#   4. cfn-lint  on the generated CloudFormation templates
#   5. pytest    infra/tests: least-privilege IAM, the stream mapping, tables,
#                routes, outputs, dashboard, alarms, artifacts
#
# Runs from a fresh clone as root on Debian; needs the Rust toolchain (rustup)
# that the rest of the repository needs anyway.
set -euo pipefail

infra="$(cd "$(dirname "$0")" && pwd)"
cd "$infra"

STAGE="${CHECK_STAGE:-dev}"
REGION="${CHECK_REGION:-us-east-1}"

all_started=$SECONDS
step_name=""
step_started=$SECONDS
# Prints how long the previous step took, then the next step's header.
step() {
    if [[ -n "$step_name" ]]; then
        printf '(%s: %d s)\n' "$step_name" $((SECONDS - step_started))
    fi
    step_name="$*"
    step_started=$SECONDS
    printf '\n==== infra: %s ====\n' "$*"
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "check.sh: missing $*, and no apt-get to install it" >&2
        exit 1
    fi
    echo "check.sh: apt-get install $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "tools"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
pinned="$(node -p 'require("./package.json").devDependencies.serverless')"
installed="$(node -p 'require("./node_modules/serverless/package.json").version' 2>/dev/null || true)"
if [[ "$installed" != "$pinned" ]]; then
    npm ci --no-audit --no-fund
fi
if [[ ! -x .venv/bin/python ]]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# build.sh finds `cargo lambda` and zig (python -m ziglang) through PATH.
export PATH="$infra/.venv/bin:$PATH"
node --version
node_modules/.bin/serverless --version
cargo lambda --version
cfn-lint --version
python -m pytest --version

step "build (infra/build.sh)"
./build.sh

step "serverless package (offline, dummy credentials)"
rm -rf .serverless
package=(
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN
    AWS_ACCESS_KEY_ID=offline-check AWS_SECRET_ACCESS_KEY=offline-check
    AWS_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true
    SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
    node_modules/.bin/serverless package --stage "$STAGE" --region "$REGION"
)
if unshare --net true >/dev/null 2>&1; then
    echo "check.sh: packaging in a new network namespace (no network at all)"
    unshare --net -- "${package[@]}"
else
    echo "check.sh: cannot create a network namespace here; packaging with the network (it makes no AWS calls)"
    "${package[@]}"
fi
ls -l .serverless/

step "cfn-lint"
# W3005 (a DependsOn that a GetAtt already implies) is ignored: the Serverless
# Framework itself writes those DependsOn on functions and permissions.
cfn-lint --ignore-checks W3005 -- \
    .serverless/cloudformation-template-update-stack.json \
    .serverless/cloudformation-template-create-stack.json
echo "cfn-lint: no errors or warnings"

step "pytest (infra/tests)"
python -m pytest tests -q

step "done"
echo "infra/check.sh: all passed in $((SECONDS - all_started)) s"
