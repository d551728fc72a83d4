#!/usr/bin/env bash
# Checks the AWS deployment offline, as CI does: no AWS account is needed or
# reached. Stops at the first failure (non-zero exit); each step prints a
# header and how long it took.
#
#   1. tools     infra/tools.sh: Node (Debian's nodejs/npm if missing), the
#                pinned Serverless CLI (npm ci), and the Python venv
#                infra/.venv with requirements.txt (cargo-lambda, zig,
#                cfn-lint, pytest); build.sh uses the same venv
#   2. build     infra/build.sh: the seven arm64 zips in infra/dist/
#   3. package   `serverless package` with dummy credentials, inside an empty
#                network namespace when the machine allows one (proof that it
#                calls nothing), twice: with sign-in on
#                (infra/tests/sign-in.json) into infra/.serverless-sign-in/,
#                and as deployed by default (sign-in off) into
#                infra/.serverless/
#   4. cfn-lint  on the generated CloudFormation templates, both packages
#   5. pytest    infra/tests, on both packages: least-privilege IAM, the
#                stream mapping, tables (against tables.json), routes, the
#                authorizer (only with sign-in on, its key never in the
#                template), invoke permissions, outputs, environment,
#                retention and sign-in parameters, logging, dashboard, alarms
#                and their runbook, the docs' numbers, artifacts
#
# Runs from a fresh clone as root on Debian; needs the Rust toolchain (rustup)
# that the rest of the repository needs anyway.
set -euo pipefail

infra="$(cd "$(dirname "$0")" && pwd)"
cd "$infra"

# CHECK_REUSE_ZIPS=1 skips the build and packages the zips infra/dist/
# already holds (when only the template or the tests changed).
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

# shellcheck source=tools.sh
source "$infra/tools.sh"

step "tools (infra/tools.sh)"
infra_node_tools
infra_python_tools
node --version
node_modules/.bin/serverless --version
cargo lambda --version
cfn-lint --version
python -m pytest --version

step "build (infra/build.sh)"
if [[ -n "${CHECK_REUSE_ZIPS:-}" ]]; then
    # Iterating on the template alone: the zips infra/dist/ already holds.
    echo "check.sh: CHECK_REUSE_ZIPS is set: packaging the zips already in infra/dist/"
    ls -l dist/
else
    ./build.sh
fi

step "serverless package (offline, dummy credentials; with sign-in on, then off)"
rm -rf .serverless .serverless-sign-in
# The sign-in package's --param options and the sentinel values of the key
# variables, from infra/tests/sign-in.json (which the tests read too).
mapfile -t sign_in_params < <(node -e '
    const { params } = require("./tests/sign-in.json");
    for (const [name, value] of Object.entries(params)) console.log(`--param=${name}=${value}`);
')
mapfile -t sign_in_environment < <(node -e '
    const { environment } = require("./tests/sign-in.json");
    for (const [name, value] of Object.entries(environment)) console.log(`${name}=${value}`);
')
if (( ${#sign_in_params[@]} == 0 || ${#sign_in_environment[@]} == 0 )); then
    echo "check.sh: could not read infra/tests/sign-in.json" >&2
    exit 1
fi
# package DIR [VARIABLE=VALUE...] -- [serverless options...]
package() {
    local dir="$1" variables=()
    shift
    while [[ "$1" != "--" ]]; do
        variables+=("$1")
        shift
    done
    shift
    local command=(
        env -u AWS_PROFILE -u AWS_SESSION_TOKEN
        AWS_ACCESS_KEY_ID=offline-check AWS_SECRET_ACCESS_KEY=offline-check
        AWS_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true
        SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
        "${variables[@]}"
        node_modules/.bin/serverless package --stage "$STAGE" --region "$REGION" --package "$dir" "$@"
    )
    if [[ -n "$isolated" ]]; then
        unshare --net -- "${command[@]}"
    else
        "${command[@]}"
    fi
    ls -l "$dir/"
}
isolated=""
if unshare --net true >/dev/null 2>&1; then
    isolated=yes
    echo "check.sh: packaging in a new network namespace (no network at all)"
else
    echo "check.sh: cannot create a network namespace here; packaging with the network (it makes no AWS calls)"
fi
# Sign-in first: every `serverless package` starts by deleting .serverless/,
# wherever it is told to write.
echo "check.sh: sign-in on (${sign_in_params[*]}), into .serverless-sign-in/"
package .serverless-sign-in "${sign_in_environment[@]}" -- "${sign_in_params[@]}"
echo "check.sh: sign-in off (the default), into .serverless/"
package .serverless --

step "cfn-lint"
# W3005 (a DependsOn that a GetAtt already implies) is ignored: the Serverless
# Framework itself writes those DependsOn on functions and permissions.
cfn-lint --ignore-checks W3005 -- \
    .serverless/cloudformation-template-update-stack.json \
    .serverless/cloudformation-template-create-stack.json \
    .serverless-sign-in/cloudformation-template-update-stack.json
echo "cfn-lint: no errors or warnings"

step "pytest (infra/tests)"
python -m pytest tests -q

step "done"
echo "infra/check.sh: all passed in $((SECONDS - all_started)) s"
