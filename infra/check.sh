#!/usr/bin/env bash
# Checks the AWS deployment offline, as CI does: no AWS account is needed or
# reached. Stops at the first failure (non-zero exit); each step prints a
# header and how long it took.
#
#   1. tools     infra/tools.sh: Node (Debian's nodejs/npm if missing), the
#                pinned Serverless CLI (npm ci), and the Python venv
#                infra/.venv with requirements.txt (cargo-lambda, zig,
#                cfn-lint, pytest); build.sh uses the same venv
#   2. build     infra/build.sh: the six arm64 zips in infra/dist/
#   3. package   `serverless package` with dummy credentials, inside an empty
#                network namespace when the machine allows one (proof that it
#                calls nothing), writing infra/.serverless/*.json
#   4. cfn-lint  on the generated CloudFormation templates
#   5. pytest    infra/tests: least-privilege IAM, the stream mapping, tables
#                (against tables.json), routes, invoke permissions, outputs,
#                environment, retention parameters, logging, dashboard,
#                alarms and their runbook, the docs' numbers, artifacts
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
