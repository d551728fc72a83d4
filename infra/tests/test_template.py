"""Checks the CloudFormation templates that `serverless package` generated.

infra/check.sh runs infra/build.sh and then `serverless package` (offline,
dummy credentials) twice before this: as deployed by default, sign-in off,
into infra/.serverless/, and with sign-in on (infra/tests/sign-in.json) into
infra/.serverless-sign-in/. infra/dist/ holds the nine zips. Every check of
the template runs on both packages. Nothing here talks to AWS.

Sources of truth read here rather than repeated: infra/tables.json (the
tables' schemas), infra/stream-filter.json (the stream filter),
infra/functions.json (every function's memory and timeout) and
handlers/src/metric.rs (the metrics). The permission table below is the one
source of truth for what each function may do; it must equal what the
template grants and what docs/deploy.md documents. Numbers and names that
docs/deploy.md and docs/operations.md take from the template (memory,
timeouts, the mapping's settings, tables, outputs, environment, alarms) are
checked against it too.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parent.parent
ROOT = INFRA.parent
# The two packages infra/check.sh makes: sign-in off (the default) and on.
SIGN_IN_OFF = "sign-in off"
SIGN_IN_ON = "sign-in on"
PACKAGES = {
    SIGN_IN_OFF: INFRA / ".serverless",
    SIGN_IN_ON: INFRA / ".serverless-sign-in",
}
TEMPLATE_FILE = "cloudformation-template-update-stack.json"
STATE_FILE = "serverless-state.json"
# How the sign-in package was made: its --param options, and the sentinel
# values of the key variables in the environment while packaging.
SIGN_IN_PATH = INFRA / "tests" / "sign-in.json"
STREAM_FILTER_PATH = INFRA / "stream-filter.json"
STREAM_MAPPING_PATH = INFRA / "stream-mapping.json"
TABLES_PATH = INFRA / "tables.json"
FUNCTIONS_PATH = INFRA / "functions.json"
METRICS_PATH = ROOT / "handlers" / "src" / "metric.rs"
LIMITS_PATH = ROOT / "handlers" / "src" / "limits.rs"
DOC_PATH = ROOT / "docs" / "deploy.md"
OPERATIONS_PATH = ROOT / "docs" / "operations.md"

SERVICE = "serverless-chat"
# The glibc of Lambda's provided.al2023 runtime.
AL2023_GLIBC = (2, 34)
NAMESPACE = "ServerlessChat"

# Deployed binary -> (function key in serverless.yml, logical-id prefix).
FUNCTIONS = {
    "connect": ("connect", "Connect"),
    "disconnect": ("disconnect", "Disconnect"),
    "sendmessage": ("sendmessage", "Sendmessage"),
    "history": ("history", "History"),
    "default": ("default", "Default"),
    "moderate": ("moderate", "Moderate"),
    "stream-processor": ("streamProcessor", "StreamProcessor"),
    "reconcile": ("reconcile", "Reconcile"),
    "fanout": ("fanout", "Fanout"),
    "authorizer": ("authorizer", "Authorizer"),
}
# Deployed only with sign-in on (infra/auth.js; alarms.js's SIGN_IN_FUNCTIONS).
SIGN_IN_FUNCTIONS = {"authorizer"}
# The WebSocket route each route function serves.
ROUTES = {
    "$connect": "connect",
    "$disconnect": "disconnect",
    "sendmessage": "sendmessage",
    "history": "history",
    "remove": "moderate",
    "ban": "moderate",
    "delete": "moderate",
    "$default": "default",
}
# Routes with a route response: the handler's body reaches the client. Only
# those that always answer with a body: history (a page, or an error frame)
# and $default. sendmessage answers by PostToConnection (an empty success body
# would reach the client as an empty frame). handlers/tests/infra.rs checks
# the same set against the code's `Route`.
TWO_WAY_ROUTES = {"history", "remove", "ban", "delete", "$default"}

# What every function is told where to post (infra builds it with the
# partition's URL suffix; the code no longer derives it).
MANAGEMENT_API_ENDPOINT = "https://${{WebsocketsApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{stage}"
# The application log levels a deployment may set (infra/log-level.js): at
# or below INFO, so Lambda still passes the EMF lines (which carry no level
# and count as INFO), and not TRACE, where libraries log raw events.
SAFE_LOG_LEVELS = {"DEBUG", "INFO"}

# Resource labels, as docs/deploy.md writes them.
OWN_LOG_GROUP = "own log group"
POST_TO_CONNECTIONS = "{api}/{stage}/POST/@connections/*"
GET_CONNECTIONS = "{api}/{stage}/GET/@connections/*"
DELETE_CONNECTIONS = "{api}/{stage}/DELETE/@connections/*"
SESSION_STREAM = "SessionHistory stream"
FAILURES_QUEUE = "stream failures queue"
FANOUT_WORKERS = "fanout function"
# A global secondary index is written `<table>/index/<index>` (its ARN's
# tail); infra/tables.json says which exist.
ROOM_INDEX = "ActiveConnections/index/room-shard-index"
HISTORY_INDEX = "MessageHistory/index/room-time-index"
OPEN_SESSIONS_INDEX = "SessionHistory/index/open-sessions-index"
USER_INDEX = "ActiveConnections/index/user-index"

LOGS = {
    ("logs:CreateLogStream", OWN_LOG_GROUP),
    ("logs:PutLogEvents", OWN_LOG_GROUP),
}

# What each function's code calls (handlers/src/store.rs, management.rs,
# fanout.rs; stream-processor/src/lib.rs), as (IAM action, resource) pairs.
# A Query is granted on the index it reads and nowhere else; nothing Scans.
PERMISSIONS: dict[str, set[tuple[str, str]]] = {
    # TransactWriteItems of two Puts, one conditional: PutItem per table.
    "connect": LOGS
    | {
        ("dynamodb:PutItem", "ActiveConnections"),
        ("dynamodb:PutItem", "SessionHistory"),
        # A signed-in user's ban and the room's members-only mark; the marks
        # of the rooms their claim names.
        ("dynamodb:BatchGetItem", "Moderation"),
        ("dynamodb:PutItem", "Moderation"),
    },
    "disconnect": LOGS
    | {
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("dynamodb:UpdateItem", "SessionHistory"),
    },
    "sendmessage": LOGS
    | {
        ("dynamodb:GetItem", "ActiveConnections"),
        # The rate limit's mark (handlers/src/rate.rs).
        ("dynamodb:UpdateItem", "ActiveConnections"),
        ("dynamodb:PutItem", "MessageHistory"),
        ("dynamodb:Query", ROOM_INDEX),
        # A 410 Gone closes the connection's session, then deletes its row.
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
        # A large room's rest goes to the fan-out workers.
        ("lambda:InvokeFunction", FANOUT_WORKERS),
    },
    "history": LOGS
    | {
        ("dynamodb:GetItem", "ActiveConnections"),
        # The history allowance (handlers/src/admission.rs).
        ("dynamodb:UpdateItem", "ActiveConnections"),
        ("dynamodb:Query", HISTORY_INDEX),
    },
    "default": set(LOGS),
    # remove, ban, delete (handlers/src/routes/moderate.rs): the one
    # function that may close connections.
    "moderate": LOGS
    | {
        ("dynamodb:GetItem", "ActiveConnections"),
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("dynamodb:Query", USER_INDEX),
        ("dynamodb:Query", ROOM_INDEX),
        ("dynamodb:GetItem", "MessageHistory"),
        ("dynamodb:UpdateItem", "MessageHistory"),
        ("dynamodb:PutItem", "Moderation"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
        ("execute-api:ManageConnections", DELETE_CONNECTIONS),
        ("lambda:InvokeFunction", FANOUT_WORKERS),
    },
    # Verifies tokens with the key in its environment: calls no AWS service.
    "authorizer": set(LOGS),
    "stream-processor": LOGS
    | {
        ("dynamodb:DescribeStream", SESSION_STREAM),
        ("dynamodb:GetRecords", SESSION_STREAM),
        ("dynamodb:GetShardIterator", SESSION_STREAM),
        ("dynamodb:ListStreams", SESSION_STREAM),
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:Query", ROOM_INDEX),
        # Whether a newcomer whose welcome got 410 still has its row.
        ("dynamodb:GetItem", "ActiveConnections"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
        ("lambda:InvokeFunction", FANOUT_WORKERS),
        ("sqs:SendMessage", FAILURES_QUEUE),
    },
    # The fan-out workers (handlers/src/fanout/workers.rs): one shard of a
    # room read, posted to, the gone pruned; the rest handed on.
    "fanout": LOGS
    | {
        ("dynamodb:Query", ROOM_INDEX),
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
        ("lambda:InvokeFunction", FANOUT_WORKERS),
    },
    # The repair (handlers/src/reconcile.rs): open sessions from their index,
    # a connection's last sign of life, the close, the row, GetConnection.
    "reconcile": LOGS
    | {
        ("dynamodb:Query", OPEN_SESSIONS_INDEX),
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:GetItem", "ActiveConnections"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", GET_CONNECTIONS),
    },
}

# Values of the `kind` dimension of the fan-out metrics (handlers/src/metric.rs
# `FanoutKind`; infra/alarms.js `FANOUT_KINDS`).
FANOUT_KINDS = ("message", "presence")

# Sign-in: kind of key (the `auth` parameter) -> the variable the authorizer
# reads it from (handlers/src/config.rs, `AuthSettings::from_vars`) and where
# CloudFormation resolves it from. infra/auth.js's KINDS must say the same.
KEY_KINDS = {
    "hs256": ("AUTH_JWT_SECRET", "secretsmanager"),
    "public-key": ("AUTH_JWT_PUBLIC_KEY", "ssm"),
    "jwks": ("AUTH_JWKS", "ssm"),
}
KEY_VARIABLES = {variable for variable, _ in KEY_KINDS.values()}
# The authorizer's other variables, and their parameters.
OPTIONAL_AUTH_VARIABLES = {
    "AUTH_JWT_ISSUER": "authIssuer",
    "AUTH_JWT_AUDIENCE": "authAudience",
    "AUTH_NAME_CLAIM": "authNameClaim",
    "AUTH_ROOMS_CLAIM": "authRoomsClaim",
    "AUTH_ROLES_CLAIM": "authRolesClaim",
    "AUTH_JWKS_URL": "authJwksUrl",
    "AUTH_MAX_TOKEN_LIFETIME_SECS": "authMaxTokenLifetime",
}
# The claims' names when their parameters are left empty (handlers::auth,
# handlers::access).
CLAIM_DEFAULTS = {"AUTH_NAME_CLAIM": "name", "AUTH_ROOMS_CLAIM": "rooms", "AUTH_ROLES_CLAIM": "roles"}
# API Gateway refuses a handshake without it (401) before invoking the
# authorizer: the one thing a browser's WebSocket can send.
IDENTITY_SOURCE = ["route.request.querystring.token"]
CONFIG_PATH = ROOT / "handlers" / "src" / "config.rs"


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str  # Counter, Histogram or Gauge
    unit: str  # the `metrics` crate's Unit variant, e.g. Count
    label: str | None  # the EMF dimension next to Stage: "kind", "reason" or None


# One entry of handlers/src/metric.rs's table, written exactly as
#     Metric {
#         name: "messages_sent",      (or a constant: name: MESSAGES_SENT)
#         kind: MetricKind::Counter,
#         unit: Unit::Count,
#         label: None,                (or Some(KIND), Some(REASON))
#         description: "...",
#     },
METRIC_ENTRY = re.compile(
    r"^\s*Metric\s*\{\s*"
    r'name:\s*(?:"(?P<name>[a-z0-9_]+)"|(?P<constant>[A-Z][A-Z0-9_]*)),\s*'
    r"kind:\s*MetricKind::(?P<kind>Counter|Histogram|Gauge),\s*"
    r"unit:\s*Unit::(?P<unit>[A-Za-z]+),\s*"
    r"label:\s*(?:None|Some\((?P<label>KIND|REASON|ACTION)\)),\s*"
    r"description:",
    re.MULTILINE,
)
# `pub const MESSAGES_SENT: &str = "messages_sent";`
METRIC_CONSTANT = re.compile(r'^pub const ([A-Z][A-Z0-9_]*): &str = "([a-z0-9_]+)";', re.MULTILINE)
# Any entry at all: a line that is only `Metric {` (not `pub struct Metric {`).
METRIC_BLOCK = re.compile(r"^\s*Metric\s*\{\s*$", re.MULTILINE)
METRIC_FORM = (
    'Metric { name: "messages_sent" (or a `pub const` string), kind: MetricKind::Counter, unit: Unit::Count, '
    'label: None, description: "..." }'
)


class MetricTableError(Exception):
    pass


def parse_metrics(source: str, origin: str) -> list[MetricDef]:
    """The metric table of a metric.rs source; MetricTableError, naming the
    expected form, when it has no entry in that form or some entry is in
    another form (a constant for the name, fields reordered)."""
    constants = dict(METRIC_CONSTANT.findall(source))
    unknown = sorted(
        match["constant"]
        for match in METRIC_ENTRY.finditer(source)
        if match["constant"] and match["constant"] not in constants
    )
    if unknown:
        raise MetricTableError(f"{origin}: metric name constants not defined as string literals: {unknown}")
    entries = [
        MetricDef(
            name=match["name"] or constants[match["constant"]],
            kind=match["kind"],
            unit=match["unit"],
            label=match["label"].lower() if match["label"] else None,
        )
        for match in METRIC_ENTRY.finditer(source)
    ]
    blocks = len(METRIC_BLOCK.findall(source))
    if not entries:
        raise MetricTableError(
            f"{origin}: no metric entries in the form infra/tests read "
            f"(`{METRIC_FORM}`: the name a string literal, the fields in that order); "
            f"{blocks} `Metric {{` entries are written some other way"
        )
    if len(entries) != blocks:
        raise MetricTableError(
            f"{origin}: {blocks} `Metric {{` entries but only {len(entries)} in the form "
            f"infra/tests read (`{METRIC_FORM}`)"
        )
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise MetricTableError(f"{origin}: metrics named twice: {duplicates}")
    return entries


METRIC_SAMPLE = """
pub struct Metric {
    pub name: &'static str,
}

pub const ALL: [Metric; 2] = [
    Metric {
        name: "fanout_latency",
        kind: MetricKind::Histogram,
        unit: Unit::Milliseconds,
        label: Some(KIND),
        description: "Wall time of one fan-out",
    },
    Metric {
        name: "connects",
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Sessions started",
    },
];
"""


def run_node(script, argument):
    """Runs `script` with node in infra/ (as the Serverless Framework loads
    its files), `argument` as JSON in argv; what it printed, as JSON."""
    node = shutil.which("node")
    assert node, "node is missing: infra/tools.sh installs it (infra/check.sh runs it)"
    result = subprocess.run(
        [node, "-e", script, json.dumps(argument)],
        cwd=INFRA,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_metric_parser_reads_the_documented_form():
    assert parse_metrics(METRIC_SAMPLE, "sample") == [
        MetricDef("fanout_latency", "Histogram", "Milliseconds", "kind"),
        MetricDef("connects", "Counter", "Count", None),
    ]


def test_metric_parser_resolves_name_constants():
    constant_names = 'pub const CONNECTS: &str = "connects";\n' + METRIC_SAMPLE.replace(
        '"connects"', "CONNECTS"
    )
    assert parse_metrics(constant_names, "sample") == parse_metrics(METRIC_SAMPLE, "sample")


def test_metric_parser_refuses_other_forms_clearly():
    undefined = METRIC_SAMPLE.replace('"connects"', "CONNECTS")
    with pytest.raises(MetricTableError, match="not defined as string literals"):
        parse_metrics(undefined, "sample")
    reordered = METRIC_SAMPLE.replace(
        '        kind: MetricKind::Counter,\n        unit: Unit::Count,',
        '        unit: Unit::Count,\n        kind: MetricKind::Counter,',
    )
    with pytest.raises(MetricTableError, match="2 `Metric \\{` entries but only 1"):
        parse_metrics(reordered, "sample")
    with pytest.raises(MetricTableError, match="no metric entries in the form"):
        parse_metrics("pub struct Metric {\n}\n", "sample")
    with pytest.raises(MetricTableError, match="named twice"):
        parse_metrics(METRIC_SAMPLE.replace('"connects"', '"fanout_latency"'), "sample")


@pytest.fixture(scope="session")
def metrics() -> dict[str, MetricDef]:
    try:
        entries = parse_metrics(METRICS_PATH.read_text(), "handlers/src/metric.rs")
    except MetricTableError as error:
        pytest.fail(str(error))
    return {entry.name: entry for entry in entries}


# Gauges exist only in the local stack (standing in for what AWS measures
# itself); counters and histograms are what the functions write as EMF.
def deployed(metrics: dict[str, MetricDef], kind: str) -> list[MetricDef]:
    return [metric for metric in metrics.values() if metric.kind == kind]


# ---------------------------------------------------------------- fixtures


def package_file(variant: str, name: str) -> dict:
    path = PACKAGES[variant] / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run infra/check.sh (it packages first, with sign-in on and off)")
    return json.loads(path.read_text())


@pytest.fixture(scope="session", params=list(PACKAGES))
def variant(request) -> str:
    """Which package the test reads: every test of the template runs on both."""
    return request.param


@pytest.fixture(scope="session")
def sign_in(variant: str) -> bool:
    return variant == SIGN_IN_ON


@pytest.fixture(scope="session")
def functions(sign_in: bool) -> dict[str, tuple[str, str]]:
    """The functions this package deploys (FUNCTIONS' shape)."""
    return {
        binary: names for binary, names in FUNCTIONS.items() if sign_in or binary not in SIGN_IN_FUNCTIONS
    }


@pytest.fixture(scope="session")
def template(variant: str) -> dict:
    return package_file(variant, TEMPLATE_FILE)


@pytest.fixture(scope="session")
def resources(template: dict) -> dict:
    return template["Resources"]


@pytest.fixture(scope="session")
def state(variant: str) -> dict:
    return package_file(variant, STATE_FILE)


@pytest.fixture(scope="session")
def sign_in_package() -> dict:
    """How infra/check.sh packaged with sign-in on."""
    return json.loads(SIGN_IN_PATH.read_text())


@pytest.fixture(scope="session")
def stage(state: dict) -> str:
    return state["service"]["provider"]["stage"]


@pytest.fixture(scope="session")
def doc() -> str:
    return DOC_PATH.read_text()


@pytest.fixture(scope="session")
def operations() -> str:
    return OPERATIONS_PATH.read_text()


@pytest.fixture(scope="session")
def tables_json() -> dict:
    return json.loads(TABLES_PATH.read_text())


def of_type(resources: dict, kind: str) -> dict:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def as_list(value):
    return value if isinstance(value, list) else [value]


def function_properties(resources: dict, binary: str) -> dict:
    return resources[f"{FUNCTIONS[binary][1]}LambdaFunction"]["Properties"]


def markdown_table(doc: str, *headers: str, source: str = "docs/deploy.md") -> list[list[str]]:
    """The body rows of the first Markdown table whose header row starts with
    `headers` (case-insensitive), each row as a list of cells without
    backticks."""
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        cells = [cell.strip().lower() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and tuple(cells[: len(headers)]) == headers:
            rows = []
            for row in lines[index + 2 :]:
                if not row.lstrip().startswith("|"):
                    break
                rows.append(
                    [cell.strip().replace("`", "") for cell in row.strip().strip("|").split("|")]
                )
            return rows
    pytest.fail(f"{source} has no table headed {' | '.join(headers)}")


# ---------------------------------------------------------------- IAM


def index_labels() -> dict[str, str]:
    """`${<table resource>.Arn}/index/<index>` -> `<table>/index/<index>`, for
    every index infra/tables.json declares."""
    tables = json.loads(TABLES_PATH.read_text())
    return {
        f"${{{entry['resource']}.Arn}}/index/{index}": f"{table}/index/{index}"
        for table, entry in tables.items()
        for index in entry.get("indexes", {})
    }


def resource_label(resource, binary: str, stage: str) -> str:
    """Names a policy resource as docs/deploy.md does; anything unexpected
    (a wildcard, another function's log group, a literal ARN, an index
    tables.json does not declare, `/index/*`) comes back as itself and so
    fails the comparison."""
    prefix = FUNCTIONS[binary][1]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        known = {
            ("ActiveConnectionsTable", "Arn"): "ActiveConnections",
            ("SessionHistoryTable", "Arn"): "SessionHistory",
            ("MessageHistoryTable", "Arn"): "MessageHistory",
            ("ModerationTable", "Arn"): "Moderation",
            ("SessionHistoryTable", "StreamArn"): SESSION_STREAM,
            ("StreamProcessorFailuresQueue", "Arn"): FAILURES_QUEUE,
            (f"{prefix}LogGroup", "Arn"): OWN_LOG_GROUP,
        }
        return known.get((name, attribute), f"{name}.{attribute}")
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        def connections(method: str) -> str:
            return (
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                f"${{WebsocketsApi}}/{stage}/{method}/@connections/*"
            )

        if resource["Fn::Sub"] == connections("POST"):
            return POST_TO_CONNECTIONS
        if resource["Fn::Sub"] == connections("GET"):
            return GET_CONNECTIONS
        if resource["Fn::Sub"] == connections("DELETE"):
            return DELETE_CONNECTIONS
        if resource["Fn::Sub"] == (
            "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:"
            f"function:{SERVICE}-{stage}-fanout"
        ):
            return FANOUT_WORKERS
        if resource["Fn::Sub"] in index_labels():
            return index_labels()[resource["Fn::Sub"]]
    return json.dumps(resource)


def granted(role: dict, binary: str, stage: str) -> set[tuple[str, str]]:
    grants = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            assert not {"NotAction", "NotResource", "NotPrincipal"} & statement.keys(), statement
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{binary}: wildcard action {action}"
                for resource in as_list(statement["Resource"]):
                    assert resource != "*", f"{binary}: wildcard resource for {action}"
                    grants.add((action, resource_label(resource, binary, stage)))
    return grants


def test_each_function_has_its_own_role(resources, functions):
    roles = of_type(resources, "AWS::IAM::Role")
    assert set(roles) == {f"{prefix}Role" for _, prefix in functions.values()}, (
        "exactly one role per function, and no shared default role"
    )
    assert {name.removesuffix("LambdaFunction") for name in of_type(resources, "AWS::Lambda::Function")} == {
        prefix for _, prefix in functions.values()
    }
    assert not of_type(resources, "AWS::IAM::Policy")
    assert not of_type(resources, "AWS::IAM::ManagedPolicy")
    for binary, (_, prefix) in functions.items():
        function = resources[f"{prefix}LambdaFunction"]["Properties"]
        assert function["Role"] == {"Fn::GetAtt": [f"{prefix}Role", "Arn"]}, binary


def test_roles_trust_only_lambda_and_attach_no_managed_policies(resources):
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        properties = role["Properties"]
        assert "ManagedPolicyArns" not in properties, name
        assert "PermissionsBoundary" not in properties, name
        assert properties["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ], name


@pytest.mark.parametrize("binary", FUNCTIONS)
def test_role_grants_exactly_what_the_code_uses(resources, stage, functions, binary):
    prefix = FUNCTIONS[binary][1]
    if binary not in functions:
        assert f"{prefix}Role" not in resources, f"{binary} is not deployed, but its role is"
        return
    assert granted(resources[f"{prefix}Role"], binary, stage) == PERMISSIONS[binary]


def test_own_log_group_is_the_functions(resources, functions):
    for binary, (_, prefix) in functions.items():
        name = resources[f"{prefix}LambdaFunction"]["Properties"]["FunctionName"]
        group = resources[f"{prefix}LogGroup"]["Properties"]
        assert group["LogGroupName"] == f"/aws/lambda/{name}", binary


def test_the_documented_permission_table_matches(doc):
    documented: dict[str, set[tuple[str, str]]] = {binary: set() for binary in FUNCTIONS}
    for row in markdown_table(doc, "function", "actions", "on"):
        if len(row) < 3:
            continue
        function, actions, on = row[:3]
        targets = list(FUNCTIONS) if function == "every function" else [function]
        for target in targets:
            assert target in documented, f"docs/deploy.md names an unknown function {target!r}"
            # "—" marks a function with nothing beyond the shared rows.
            for action in (a.strip() for a in actions.split(",")):
                if action in {"", "-", "—"}:
                    continue
                for resource in filter(None, (r.strip() for r in on.split(","))):
                    documented[target].add((action, resource))
    assert documented == PERMISSIONS


def test_nothing_scans_and_queries_read_indexes_only(resources, stage, functions):
    """Fan-out reads a room's entries in the room index, never the whole
    table: no role may Scan, and a Query is allowed on an index ARN only
    (a grant on the table ARN would allow querying the table itself)."""
    indexes = set(index_labels().values())
    assert indexes == {ROOM_INDEX, USER_INDEX, HISTORY_INDEX, OPEN_SESSIONS_INDEX}, (
        "tables.json changed its indexes: update PERMISSIONS"
    )
    for binary, (_, prefix) in functions.items():
        grants = granted(resources[f"{prefix}Role"], binary, stage)
        assert not {resource for action, resource in grants if action == "dynamodb:Scan"}, binary
        queried = {resource for action, resource in grants if action == "dynamodb:Query"}
        assert queried <= indexes, f"{binary} may Query {queried - indexes}"


# ---------------------------------------------------------------- stream


def test_stream_mapping(resources):
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1
    (mapping,) = mappings.values()
    properties = mapping["Properties"]
    assert properties["FunctionName"] == {"Fn::GetAtt": ["StreamProcessorLambdaFunction", "Arn"]}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["SessionHistoryTable", "StreamArn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    # Bounded: -1 (the default for streams) would retry a poison record until
    # it expires from the stream, blocking its shard for 24 hours.
    assert 0 <= properties["MaximumRetryAttempts"] <= 10
    assert 60 <= properties["MaximumRecordAgeInSeconds"] <= 86400
    # The one home of the batch settings, which the local poller reads too.
    shared = json.loads(STREAM_MAPPING_PATH.read_text())
    assert properties["BatchSize"] == shared["batchSize"]
    assert properties["MaximumBatchingWindowInSeconds"] == shared["batchWindow"]
    assert 1 <= properties["BatchSize"] <= 10000
    assert properties["StartingPosition"] == "LATEST"
    destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["StreamProcessorFailuresQueue", "Arn"]}
    assert resources["StreamProcessorFailuresQueue"]["Type"] == "AWS::SQS::Queue"
    assert "StreamProcessorRole" in mapping.get("DependsOn", [])


def test_stream_filter_is_the_shared_file(resources):
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    deployed_filters = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert deployed_filters == json.loads(STREAM_FILTER_PATH.read_text())


def test_the_documented_mapping_settings_match(resources, doc):
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    deployed_settings = {
        "startingPosition": properties["StartingPosition"],
        "batchSize": str(properties["BatchSize"]),
        "batchWindow": str(properties["MaximumBatchingWindowInSeconds"]),
        "functionResponseType": " ".join(properties["FunctionResponseTypes"]),
        "bisectBatchOnFunctionError": str(properties["BisectBatchOnFunctionError"]).lower(),
        "maximumRetryAttempts": str(properties["MaximumRetryAttempts"]),
        "maximumRecordAgeInSeconds": str(properties["MaximumRecordAgeInSeconds"]),
    }
    documented = {row[0]: row[1] for row in markdown_table(doc, "setting", "value", "why")}
    for setting, value in deployed_settings.items():
        assert documented.get(setting) == value, setting


# ---------------------------------------------------------------- tables


def test_tables_match_tables_json(resources, tables_json):
    """Each table's keys, indexes, stream and TTL are infra/tables.json's
    (which the local stack creates its tables from)."""
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert set(tables) == {entry["resource"] for entry in tables_json.values()}
    for name, entry in tables_json.items():
        properties = tables[entry["resource"]]["Properties"]
        attributes = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
        assert attributes == entry["attributes"], name
        assert len(properties["AttributeDefinitions"]) == len(attributes), name
        keys = [{"AttributeName": entry["hash_key"], "KeyType": "HASH"}]
        if entry["range_key"] is not None:
            keys.append({"AttributeName": entry["range_key"], "KeyType": "RANGE"})
        assert properties["KeySchema"] == keys, name
        if entry["stream"] is None:
            assert "StreamSpecification" not in properties, name
        else:
            assert properties["StreamSpecification"] == {"StreamViewType": entry["stream"]}, name
        if entry["ttl"] is None:
            assert "TimeToLiveSpecification" not in properties, name
        else:
            assert properties["TimeToLiveSpecification"] == {"AttributeName": entry["ttl"], "Enabled": True}, name
        assert "LocalSecondaryIndexes" not in properties, name
        indexes = entry.get("indexes", {})
        if not indexes:
            assert "GlobalSecondaryIndexes" not in properties, name
            continue
        deployed_indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
        assert set(deployed_indexes) == set(indexes), name
        for index_name, index in indexes.items():
            keys = [{"AttributeName": index["hash_key"], "KeyType": "HASH"}]
            if index["range_key"] is not None:
                keys.append({"AttributeName": index["range_key"], "KeyType": "RANGE"})
            projection = {"ProjectionType": index["projection"]}
            if index.get("non_key_attributes"):
                projection["NonKeyAttributes"] = index["non_key_attributes"]
            assert deployed_indexes[index_name] == {
                "IndexName": index_name,
                "KeySchema": keys,
                "Projection": projection,
            }, (name, index_name)


def test_every_function_names_the_tables_as_tables_json_says(resources, tables_json, functions):
    for binary in functions:
        variables = function_properties(resources, binary)["Environment"]["Variables"]
        for name, entry in tables_json.items():
            assert variables[entry["environment"]] == {"Ref": entry["resource"]}, (binary, name)


def test_tables_billing_encryption_and_recovery(resources, stage):
    tables = of_type(resources, "AWS::DynamoDB::Table")
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["TableName"] == f"{SERVICE}-{stage}-{name.removesuffix('Table')}"
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"] == {"SSEEnabled": True}
    for history in ("SessionHistoryTable", "MessageHistoryTable", "ModerationTable"):
        pitr = tables[history]["Properties"]["PointInTimeRecoverySpecification"]
        assert pitr == {"PointInTimeRecoveryEnabled": True}
    assert "PointInTimeRecoverySpecification" not in tables["ActiveConnectionsTable"]["Properties"]


def test_the_documented_tables_match(resources, doc, tables_json):
    documented = {row[0]: row for row in markdown_table(doc, "table", "key", "settings")}
    assert set(documented) == set(tables_json)
    for name, entry in tables_json.items():
        _, key, settings = documented[name][:3]
        properties = resources[entry["resource"]]["Properties"]
        expected = f"{entry['hash_key']} ({entry['attributes'][entry['hash_key']]})"
        if entry["range_key"] is not None:
            expected += f", {entry['range_key']} ({entry['attributes'][entry['range_key']]})"
        assert key == expected, name
        assert ("TTL on ttl" in settings) == (entry["ttl"] == "ttl"), name
        assert ("TTL" in settings) == (entry["ttl"] is not None), name
        assert ("stream" in settings) == (entry["stream"] is not None), name
        if entry["stream"]:
            assert f"stream {entry['stream']}" in settings, name
        pitr = "PointInTimeRecoverySpecification" in properties
        assert ("point-in-time recovery" in settings) == pitr, name


# ---------------------------------------------------------------- functions


def test_functions(resources, doc, functions):
    sizes = {row[0]: row for row in markdown_table(doc, "function", "memory (mb)", "timeout (s)")}
    assert set(sizes) == set(FUNCTIONS), "docs/deploy.md sizes every function, and only those"
    for binary in functions:
        properties = function_properties(resources, binary)
        assert properties["Runtime"] == "provided.al2023", binary
        assert properties["Architectures"] == ["arm64"], binary
        assert properties["Handler"] == "bootstrap", binary
        # The documented memory and timeout are the deployed ones.
        assert binary in sizes, f"docs/deploy.md sizes no {binary}"
        assert int(sizes[binary][1]) == properties["MemorySize"], binary
        assert int(sizes[binary][2]) == properties["Timeout"], binary
    # API Gateway gives up on an integration after 29 s.
    for binary in ROUTES.values():
        assert function_properties(resources, binary)["Timeout"] <= 29, binary
    if "authorizer" in functions:
        # It delays every handshake; and API Gateway stops waiting for it as
        # for an integration.
        assert function_properties(resources, "authorizer")["Timeout"] <= 10


def test_memory_and_timeouts_are_functions_json(resources, functions):
    """infra/functions.json is the one home of every function's memory and
    timeout: serverless.yml and infra/auth.js read it (as does `chat-bench
    lambda`), and the template holds exactly its values."""
    sizes = json.loads(FUNCTIONS_PATH.read_text())
    keys = {key for key, _ in FUNCTIONS.values()}
    assert set(sizes) == keys, "infra/functions.json sizes every function (by its serverless.yml key), and only those"
    for binary in functions:
        key, _ = FUNCTIONS[binary]
        properties = function_properties(resources, binary)
        assert properties["MemorySize"] == sizes[key]["memorySize"], binary
        assert properties["Timeout"] == sizes[key]["timeout"], binary


def test_every_function_gets_the_same_environment(resources, stage, functions):
    """provider.environment, the same for every function; the authorizer's
    own variables (sign-in's) on the authorizer only: its key goes to no
    other function."""
    expected = None
    for binary in functions:
        variables = dict(function_properties(resources, binary)["Environment"]["Variables"])
        own = {name for name in variables if name.startswith("AUTH_")}
        if binary == "authorizer":
            keys = own - set(OPTIONAL_AUTH_VARIABLES)
            assert own >= set(OPTIONAL_AUTH_VARIABLES) and len(keys) == 1 and keys <= KEY_VARIABLES, own
        else:
            assert not own, binary
        for name in own:
            del variables[name]
        assert variables["MANAGEMENT_API_ENDPOINT"] == {
            "Fn::Sub": MANAGEMENT_API_ENDPOINT.format(stage=stage)
        }, binary
        assert variables["METRICS_NAMESPACE"] == NAMESPACE, binary
        assert variables["STAGE"] == stage, binary
        # Log levels come from LoggingConfig (AWS_LAMBDA_LOG_LEVEL), not RUST_LOG.
        assert "RUST_LOG" not in variables, binary
        assert expected is None or variables == expected, binary
        expected = variables


def test_the_documented_environment_matches(resources, stage, doc, operations):
    variables = function_properties(resources, "connect")["Environment"]["Variables"]
    documented = {row[0]: row[1] for row in markdown_table(doc, "variable", "set to")}
    assert set(documented) == set(variables)
    assert documented["METRICS_NAMESPACE"] == NAMESPACE
    assert documented["STAGE"] == "<stage>"
    # Every variable the stack sets, and the log variables Lambda sets from
    # LoggingConfig, are among the settings docs/operations.md explains.
    settings = {row[0] for row in markdown_table(operations, "variable", "default", source="docs/operations.md")}
    assert set(variables) | {"AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT"} <= settings


def documented_default(cell: str, stage: str) -> str:
    """The value a docs/deploy.md parameter cell such as `30; prod: 90` gives
    `stage`."""
    default, *per_stage = (part.strip() for part in cell.split(";"))
    stages = dict(part.split(": ", 1) for part in per_stage)
    return stages.get(stage, default)


def test_logging_is_json_with_lambdas_level_filtering(resources, doc, stage, functions):
    for binary in functions:
        logging = function_properties(resources, binary)["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", binary
        # The EMF metric lines carry no level: above INFO, Lambda drops them.
        assert logging["ApplicationLogLevel"] in SAFE_LOG_LEVELS, binary
        # platform.report (docs/deploy.md's memory query) is an INFO system log.
        assert logging["SystemLogLevel"] == "INFO", binary
    parameters = {row[0]: row for row in markdown_table(doc, "parameter", "how to set it", "default")}
    assert "logLevel=" in parameters["log level"][1]
    deployed_level = function_properties(resources, "connect")["LoggingConfig"]["ApplicationLogLevel"]
    assert documented_default(parameters["log level"][2], stage) == deployed_level


def test_log_groups_have_a_retention(resources, doc, stage, functions):
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert set(groups) == {f"{prefix}LogGroup" for _, prefix in functions.values()}
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays", 0) > 0, name
    parameters = {row[0]: row for row in markdown_table(doc, "parameter", "how to set it", "default")}
    retention = groups["ConnectLogGroup"]["Properties"]["RetentionInDays"]
    assert documented_default(parameters["log retention (days)"][2], stage) == str(retention)


LOG_LEVEL_PROBE = """
const logLevel = require('./log-level.js');
const values = JSON.parse(process.argv[1]);
(async () => {
  const out = { allowed: logLevel.ALLOWED, outcomes: [] };
  for (const value of values) {
    const resolveVariable = async (name) => {
      if (name !== 'param:logLevel') throw new Error(`asked for ${name}`);
      return value;
    };
    try {
      out.outcomes.push({ value: await logLevel.logLevel({ resolveVariable }) });
    } catch (error) {
      out.outcomes.push({ error: error.message, stack: error.stack });
    }
  }
  console.log(JSON.stringify(out));
})();
"""


def test_only_safe_log_levels_can_be_deployed():
    """infra/log-level.js refuses, when packaging, every level but INFO and
    DEBUG: TRACE (libraries log raw events: tokens, messages, addresses)
    and anything above INFO (Lambda would drop the metrics)."""
    accepted = {"INFO": "INFO", "DEBUG": "DEBUG", " debug ": "DEBUG", "info": "INFO"}
    refused = ["TRACE", "trace", "WARN", "ERROR", "FATAL", "", "LOUD"]
    values = [*accepted, *refused]
    out = run_node(LOG_LEVEL_PROBE, values)
    assert set(out["allowed"]) == SAFE_LOG_LEVELS
    outcomes = dict(zip(values, out["outcomes"]))
    for value, level in accepted.items():
        assert outcomes[value] == {"value": level}, value
    for value in refused:
        assert "error" in outcomes[value], value
        assert "INFO or DEBUG" in outcomes[value]["error"], value
        assert outcomes[value]["stack"] == outcomes[value]["error"], "a stack would bury the message"


# ---------------------------------------------------------------- retention

# Deployment parameter -> (the variable it sets, its row in docs/deploy.md's
# parameter table).
RETENTION = {
    "messageRetentionDays": ("MESSAGE_RETENTION_DAYS", "message retention (days)"),
    "sessionRetentionDays": ("SESSION_RETENTION_DAYS", "session retention (days)"),
}


def test_retention_is_the_documented_default(resources, doc, stage):
    """Each retention reaches every function (the environment test checks
    they all get the same) with the value docs/deploy.md gives the stage:
    `empty` is off, an empty variable, which the code reads as unset."""
    parameters = {row[0]: row for row in markdown_table(doc, "parameter", "how to set it", "default")}
    variables = function_properties(resources, "connect")["Environment"]["Variables"]
    for parameter, (variable, row) in RETENTION.items():
        assert row in parameters, f"docs/deploy.md, Parameters: no row {row!r}"
        assert f"{parameter}=" in parameters[row][1], row
        documented = documented_default(parameters[row][2], stage)
        assert variables[variable] == ("" if documented == "empty" else documented), variable


def retention_range() -> tuple[int, int]:
    """RETENTION_DAYS_RANGE of handlers/src/limits.rs, the code's range."""
    match = re.search(
        r"^pub const RETENTION_DAYS_RANGE: [^=]*= ([0-9_]+)\.\.=([0-9_]+);$",
        LIMITS_PATH.read_text(),
        re.MULTILINE,
    )
    assert match, "handlers/src/limits.rs: no `pub const RETENTION_DAYS_RANGE: ... = MIN..=MAX;`"
    low, high = (int(bound.replace("_", "")) for bound in match.groups())
    return low, high


# Runs infra/retention.js's resolvers the way the Serverless Framework does,
# on each value of the JSON array in argv[1]; prints what each resolves to
# (or the error it stops packaging with) and the range the module read.
RETENTION_PROBE = """
const retention = require('./retention.js');
const values = JSON.parse(process.argv[1]);
(async () => {
  const out = { range: retention.range(), message: [], session: [] };
  for (const [key, parameter] of [['message', 'messageRetentionDays'], ['session', 'sessionRetentionDays']]) {
    for (const value of values) {
      const resolveVariable = async (name) => {
        if (name !== `param:${parameter}`) throw new Error(`asked for ${name}`);
        return value;
      };
      try {
        out[key].push({ value: await retention[parameter]({ resolveVariable }) });
      } catch (error) {
        out[key].push({ error: error.message, stack: error.stack });
      }
    }
  }
  try {
    retention.range('// no range here');
    out.noRange = null;
  } catch (error) {
    out.noRange = error.message;
  }
  console.log(JSON.stringify(out));
})();
"""


def test_retention_parameters_are_checked_when_packaging():
    """infra/retention.js refuses, before anything is deployed, every value
    the functions would refuse at cold start (which would stop them all),
    with the code's range read from handlers/src/limits.rs."""
    low, high = retention_range()
    accepted = {"": "", "  ": "", str(low): str(low), str(high): str(high), " 30 ": "30", "030": "30", 365: "365"}
    refused = [str(low - 1), str(high + 1), "-1", "1.5", "30d", "1e3", "thirty", "0x10"]
    values = [*accepted, *refused]
    out = run_node(RETENTION_PROBE, values)
    assert out["range"] == {"min": low, "max": high}
    for key, parameter in (("message", "messageRetentionDays"), ("session", "sessionRetentionDays")):
        outcomes = dict(zip(map(json.dumps, values), out[key]))
        for value, variable in accepted.items():
            assert outcomes[json.dumps(value)] == {"value": variable}, (parameter, value)
        for value in refused:
            outcome = outcomes[json.dumps(value)]
            assert "error" in outcome, (parameter, value)
            # Serverless prints the stack: it is just the message.
            assert outcome["stack"] == outcome["error"], (parameter, value)
            assert parameter in outcome["error"] and f"from {low} to {high}" in outcome["error"], outcome
    assert out["noRange"] and "handlers/src/limits.rs" in out["noRange"]


# ---------------------------------------------------------------- WebSocket API


@pytest.fixture(scope="session")
def routes(resources) -> dict[str, tuple[str, dict]]:
    """Route key -> (logical id, route resource)."""
    return {
        route["Properties"]["RouteKey"]: (name, route)
        for name, route in of_type(resources, "AWS::ApiGatewayV2::Route").items()
    }


def test_websocket_api_and_routes(resources, stage, routes):
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    (api_stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    assert api_stage["Properties"]["StageName"] == stage

    integrations = of_type(resources, "AWS::ApiGatewayV2::Integration")
    assert set(routes) == set(ROUTES)
    for key, binary in ROUTES.items():
        _, route = routes[key]
        integration = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = json.dumps(integrations[integration]["Properties"]["IntegrationUri"])
        assert f"{FUNCTIONS[binary][1]}LambdaFunction" in uri, key


def test_exactly_the_two_way_routes_have_a_route_response(resources, routes):
    responses = {
        r["Properties"]["RouteId"]["Ref"]: r["Properties"]
        for r in of_type(resources, "AWS::ApiGatewayV2::RouteResponse").values()
    }
    two_way = {key for key, (_, route) in routes.items() if "RouteResponseSelectionExpression" in route["Properties"]}
    assert two_way == TWO_WAY_ROUTES
    assert set(responses) == {routes[key][0] for key in TWO_WAY_ROUTES}
    for key in TWO_WAY_ROUTES:
        name, route = routes[key]
        assert route["Properties"]["RouteResponseSelectionExpression"] == "$default", key
        assert responses[name]["RouteResponseKey"] == "$default", key


def test_api_gateway_may_invoke_each_function_from_its_own_route_only(resources, sign_in):
    """Each route function from its route of this API, the authorizer (with
    sign-in on) as an authorizer of this API, and nothing else."""
    permissions = of_type(resources, "AWS::Lambda::Permission")
    from_api_gateway = {
        name: p["Properties"] for name, p in permissions.items() if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    invoked: dict[str, set[str]] = {}
    for name, properties in from_api_gateway.items():
        source = properties.get("SourceArn")
        assert isinstance(source, dict) and "${WebsocketsApi}" in source.get("Fn::Sub", ""), (
            f"{name}: API Gateway may invoke it without a SourceArn naming WebsocketsApi: {source}"
        )
        invoked.setdefault(json.dumps(properties["FunctionName"]), set()).add(source["Fn::Sub"])
    api = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}"
    expected: dict[str, set[str]] = {}
    for key, binary in ROUTES.items():
        function = json.dumps({"Fn::GetAtt": [f"{FUNCTIONS[binary][1]}LambdaFunction", "Arn"]})
        expected.setdefault(function, set()).add(f"{api}/*/{key}")
    authorizer = json.dumps({"Fn::GetAtt": ["AuthorizerLambdaFunction", "Arn"]})
    if sign_in:
        expected[authorizer] = {f"{api}/authorizers/*"}
    assert invoked == expected
    assert len(from_api_gateway) == len(ROUTES) + sign_in


def repair_interval_minutes() -> int:
    """handlers::limits::REPAIR_INTERVAL, the one home of the schedule."""
    found = re.search(
        r"pub const REPAIR_INTERVAL: Duration = Duration::from_secs\((\d+) \* 60\);",
        LIMITS_PATH.read_text(),
    )
    assert found, "handlers/src/limits.rs: REPAIR_INTERVAL is no longer `from_secs(N * 60)`"
    return int(found.group(1))


def test_the_repair_runs_on_its_schedule_and_only_that_schedule_may_invoke_it(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    assert len(rules) == 1, rules
    ((rule_id, rule),) = rules.items()
    properties = rule["Properties"]
    assert properties["ScheduleExpression"] == f"rate({repair_interval_minutes()} minutes)"
    assert properties.get("State", "ENABLED") == "ENABLED"
    assert [target["Arn"] for target in properties["Targets"]] == [
        {"Fn::GetAtt": ["ReconcileLambdaFunction", "Arn"]}
    ]
    from_events = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert len(from_events) == 1, from_events
    assert from_events[0]["FunctionName"] == {"Fn::GetAtt": ["ReconcileLambdaFunction", "Arn"]}
    assert from_events[0]["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
    # It must end its run before its schedule starts the next one.
    timeout = function_properties(resources, "reconcile")["Timeout"]
    assert timeout < repair_interval_minutes() * 60


# ---------------------------------------------------------------- throttling


def route_throttle(name: str) -> dict:
    """handlers/src/limits.rs's `RouteThrottle` constant `name`, as the
    stage's settings write it (the local stack applies the same)."""
    found = re.search(
        rf"pub const {name}: RouteThrottle = RouteThrottle \{{\s*rate_per_second: ([0-9_]+),\s*burst: ([0-9_]+),?\s*\}};",
        LIMITS_PATH.read_text(),
    )
    assert found, f"handlers/src/limits.rs: no RouteThrottle {name}"
    rate, burst = (int(value.replace("_", "")) for value in found.groups())
    return {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}


def test_the_stage_throttles_every_route_history_more_and_connect_at_the_accounts_level(
    resources, sign_in, sign_in_package, doc
):
    stage = resources["WebsocketsDeploymentStage"]["Properties"]
    default, history = route_throttle("DEFAULT_ROUTE_THROTTLE"), route_throttle("HISTORY_ROUTE_THROTTLE")
    if sign_in:
        # Packaged with the parameters infra/tests/sign-in.json sets.
        params = sign_in_package["params"]
        history = {
            "ThrottlingRateLimit": int(params["historyRateLimit"]),
            "ThrottlingBurstLimit": int(params["historyBurstLimit"]),
        }
    assert stage["DefaultRouteSettings"] == default
    assert stage["RouteSettings"] == {"history": history, "$connect": route_throttle("CONNECT_ROUTE_THROTTLE")}
    # Tighter than the default, which stays inside the account's throttle.
    assert history["ThrottlingRateLimit"] < default["ThrottlingRateLimit"] <= 10_000
    parameters = {row[0]: row for row in markdown_table(doc, "parameter", "how to set it", "default")}
    assert parameters["route rate limit"][2] == str(route_throttle("DEFAULT_ROUTE_THROTTLE")["ThrottlingRateLimit"])
    assert parameters["history rate limit"][2] == str(route_throttle("HISTORY_ROUTE_THROTTLE")["ThrottlingRateLimit"])


def test_connect_and_disconnect_have_reserved_concurrency_only_when_asked(resources, sign_in, sign_in_package):
    reserved = {
        binary: function_properties(resources, binary).get("ReservedConcurrentExecutions") for binary in FUNCTIONS
        if f"{FUNCTIONS[binary][1]}LambdaFunction" in resources
    }
    asked = int(sign_in_package["params"]["reservedConcurrency"]) if sign_in else None
    assert reserved.pop("connect") == asked
    assert reserved.pop("disconnect") == asked
    assert set(reserved.values()) == {None}, "no other function reserves concurrency"


THROTTLES_PROBE = """
const throttles = require('./throttles.js');
const cases = JSON.parse(process.argv[1]);
(async () => {
  const out = [];
  for (const [parameter, value] of cases) {
    const resolveVariable = async (name) => {
      if (name === `param:${parameter}`) return value;
      const defaults = { routeRateLimit: 1000, routeBurstLimit: 2000, historyRateLimit: 200, historyBurstLimit: 400, reservedConcurrency: '' };
      return defaults[name.replace('param:', '')];
    };
    try {
      const resolver = parameter === 'reservedConcurrency' ? throttles.reservedConcurrency
        : parameter.startsWith('history') ? throttles.routeSettings : throttles.defaultRouteSettings;
      out.push({ value: await resolver({ resolveVariable }) });
    } catch (error) {
      out.push({ error: error.message, stack: error.stack });
    }
  }
  console.log(JSON.stringify(out));
})();
"""


def test_throttling_parameters_are_checked_when_packaging():
    accepted = [("routeRateLimit", "500"), ("historyBurstLimit", " 10 "), ("reservedConcurrency", ""), ("reservedConcurrency", "25")]
    refused = [
        ("routeRateLimit", "0"), ("routeRateLimit", "10001"), ("routeBurstLimit", "5001"), ("historyRateLimit", "1.5"),
        ("historyBurstLimit", "-1"), ("routeRateLimit", "lots"), ("reservedConcurrency", "0"), ("reservedConcurrency", "1001"),
    ]
    cases = [*accepted, *refused]
    outcomes = run_node(THROTTLES_PROBE, cases)
    for case, outcome in zip(cases[: len(accepted)], outcomes):
        assert "value" in outcome, (case, outcome)
    assert outcomes[0]["value"]["ThrottlingRateLimit"] == 500
    assert outcomes[1]["value"]["history"]["ThrottlingBurstLimit"] == 10
    assert outcomes[2]["value"] is None and outcomes[3]["value"] == 25
    for case, outcome in zip(refused, outcomes[len(accepted):]):
        assert "error" in outcome and case[0] in outcome["error"], (case, outcome)
        assert outcome["stack"] == outcome["error"], "a stack would bury the message"


# ---------------------------------------------------------------- sign-in


def test_connect_alone_has_the_authorizer_and_only_with_sign_in_on(resources, routes, sign_in):
    """Off (the default): no authorizer, no authorizer function, every route
    open, as in the tutorial. On: $connect, and only $connect (the only
    route API Gateway runs an authorizer for), goes through it."""
    authorizers = of_type(resources, "AWS::ApiGatewayV2::Authorizer")
    assert len(authorizers) == sign_in
    assert ("AuthorizerLambdaFunction" in resources) == sign_in
    for key, (_, route) in routes.items():
        properties = route["Properties"]
        if sign_in and key == "$connect":
            (name,) = authorizers
            assert properties["AuthorizationType"] == "CUSTOM"
            assert properties["AuthorizerId"] == {"Ref": name}
        else:
            assert properties["AuthorizationType"] == "NONE", key
            assert "AuthorizerId" not in properties, key


def test_the_authorizer_takes_the_token_a_browser_can_send():
    """A REQUEST authorizer of this API, calling the authorizer function,
    whose one identity source is the `token` query parameter: API Gateway
    refuses a handshake lacking any identity source (401) before calling the
    authorizer, so a header would shut browsers out. No result caching:
    WebSocket authorizers have none (AuthorizerResultTtlInSeconds is for
    HTTP APIs only); it runs once per connection, on $connect."""
    resources = package_file(SIGN_IN_ON, TEMPLATE_FILE)["Resources"]
    (authorizer,) = of_type(resources, "AWS::ApiGatewayV2::Authorizer").values()
    properties = authorizer["Properties"]
    assert properties["ApiId"] == {"Ref": "WebsocketsApi"}
    assert properties["AuthorizerType"] == "REQUEST"
    assert properties["IdentitySource"] == IDENTITY_SOURCE
    assert "AuthorizerResultTtlInSeconds" not in properties
    # API Gateway invokes it through its resource-based permission, not a role.
    assert "AuthorizerCredentialsArn" not in properties
    uri = json.dumps(properties["AuthorizerUri"])
    assert '{"Fn::GetAtt": ["AuthorizerLambdaFunction", "Arn"]}' in uri
    assert ":lambda:path/2015-03-31/functions/" in uri and uri.endswith('"/invocations"]]}')


def test_turning_sign_in_on_deploys_the_stage_again():
    """The stage serves a deployment, a snapshot of the routes: with sign-in
    on, the deployment must be another one, or the stage would go on serving
    $connect without its authorizer. The Serverless Framework names it by a
    hash of the WebSocket resources it compiled (not those merged from
    `resources`): the authorizer has to be its own `authorizer:`."""
    deployments = {}
    for variant in PACKAGES:
        resources = package_file(variant, TEMPLATE_FILE)["Resources"]
        (name,) = of_type(resources, "AWS::ApiGatewayV2::Deployment")
        assert resources["WebsocketsDeploymentStage"]["Properties"]["DeploymentId"] == {"Ref": name}
        deployments[variant] = name
    assert deployments[SIGN_IN_ON] != deployments[SIGN_IN_OFF]


def test_the_authorizer_variables_are_the_ones_the_code_reads():
    """handlers/src/config.rs (`AuthSettings::from_vars`) is their home."""
    source = CONFIG_PATH.read_text()
    start = source.index("impl AuthSettings")
    read = set(re.findall(r"vars\(var::(AUTH_[A-Z_]+)\)", source[start : source.index("\n}\n", start)]))
    assert read == KEY_VARIABLES | set(OPTIONAL_AUTH_VARIABLES)


def test_the_key_is_a_dynamic_reference_and_never_in_the_package(sign_in_package):
    """The authorizer's key variable holds a CloudFormation dynamic
    reference to the secret (hs256) or the parameter, resolved when the
    function is deployed; the key itself is nowhere in either package. While
    packaging, infra/check.sh set the key variables (the names the code reads)
    to sentinel values, which must not have leaked in either."""
    params = sign_in_package["params"]
    variables = package_file(SIGN_IN_ON, TEMPLATE_FILE)["Resources"]["AuthorizerLambdaFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    variable, store = KEY_KINDS[params["auth"]]
    assert variables[variable] == expected_reference(params["auth"], params.get("authKey", ""), params.get("authKeyVersion", ""))
    assert store in variables[variable]
    assert not (KEY_VARIABLES - {variable}) & set(variables)
    for name, parameter in OPTIONAL_AUTH_VARIABLES.items():
        assert variables[name] == params.get(parameter, CLAIM_DEFAULTS.get(name, "")), name
    sentinels = list(sign_in_package["environment"].values())
    assert sentinels
    for variant, directory in PACKAGES.items():
        for path in directory.iterdir():
            content = path.read_text()
            for sentinel in sentinels:
                assert sentinel not in content, f"{variant}: {path.name} holds {sentinel}"
            # Key material of any kind: PEM, JWK, or a resolved secret.
            assert "-----BEGIN" not in content, path
            assert '"kty"' not in content and '\\"kty\\"' not in content, path
        template = json.dumps(package_file(variant, TEMPLATE_FILE))
        for found in re.findall(r"\{\{resolve:[^}]*\}\}", template):
            assert found == variables[variable], f"{variant}: an unexpected dynamic reference {found}"
    assert "{{resolve:" not in json.dumps(package_file(SIGN_IN_OFF, TEMPLATE_FILE))


def expected_reference(kind: str, key: str, version: str, stage: str = "dev") -> str:
    """The dynamic reference docs/deploy.md describes for these parameters."""
    variable, store = KEY_KINDS[kind]
    if not key:
        key = {
            "hs256": f"{SERVICE}/{stage}/auth-jwt-secret",
            "public-key": f"/{SERVICE}/{stage}/auth-jwt-public-key",
            "jwks": f"/{SERVICE}/{stage}/auth-jwks",
        }[kind]
    if store == "secretsmanager":
        return f"{{{{resolve:secretsmanager:{key}:SecretString{':::' + version if version else ''}}}}}"
    return f"{{{{resolve:ssm:{key}{':' + version if version else ''}}}}}"


# Runs infra/auth.js's room-access checks on each [values, signed_in] case
# of argv[1]: the two variables they give every function, or the error.
ROOM_ACCESS_PROBE = """
const auth = require('./auth.js');
const out = [];
for (const [values, signedIn] of JSON.parse(process.argv[1])) {
  try {
    out.push(auth.roomAccessSettings(values, signedIn));
  } catch (error) {
    out.push({ error: error.message });
  }
}
console.log(JSON.stringify(out));
"""


def test_room_access_parameters_are_checked_when_packaging(resources, sign_in):
    """infra/auth.js: open by default; closed, and members-only patterns as
    handlers::access::RoomPattern reads them; nothing else, and neither
    without sign-in (where every room is open to anyone)."""
    cases = [
        ({}, False, {"access": "open", "membersOnly": ""}),
        ({"roomAccess": "closed"}, True, {"access": "closed", "membersOnly": ""}),
        ({"membersOnlyRooms": " team-*, staff "}, True, {"access": "open", "membersOnly": "team-*,staff"}),
        ({"membersOnlyRooms": "*"}, True, {"access": "open", "membersOnly": "*"}),
        ({"roomAccess": "shut"}, True, "parameter roomAccess"),
        ({"membersOnlyRooms": "team a*b"}, True, "parameter membersOnlyRooms"),
        ({"membersOnlyRooms": "a" * 65}, True, "parameter membersOnlyRooms"),
        ({"roomAccess": "closed"}, False, "need sign-in"),
        ({"membersOnlyRooms": "team-*"}, False, "need sign-in"),
    ]
    results = run_node(ROOM_ACCESS_PROBE, [[values, signed_in] for values, signed_in, _ in cases])
    for (values, signed_in, expected), result in zip(cases, results, strict=True):
        if isinstance(expected, str):
            assert expected in result.get("error", ""), (values, signed_in, result)
        else:
            assert result == expected, (values, signed_in)
    # What this package gives every function: the defaults.
    variables = function_properties(resources, "connect")["Environment"]["Variables"]
    assert (variables["ROOM_ACCESS"], variables["MEMBERS_ONLY_ROOMS"]) == ("open", "")


# Runs infra/auth.js's checks the way packaging does, on each case of the
# JSON array in argv[1] (the parameter values); prints the environment each
# gives the authorizer (null: sign-in off), or the error that stops
# packaging; and auth.js's own tables.
AUTH_PROBE = """
const auth = require('./auth.js');
const cases = JSON.parse(process.argv[1]);
const out = {
  kinds: Object.fromEntries(Object.entries(auth.KINDS).map(([kind, { variable, store }]) => [kind, [variable, store]])),
  identitySource: auth.IDENTITY_SOURCE,
  optional: auth.OPTIONAL,
  results: [],
};
for (const values of cases) {
  try {
    const signIn = auth.settings(values, { service: 'serverless-chat', stage: 'dev' });
    out.results.push({ environment: signIn && auth.environment(signIn) });
  } catch (error) {
    out.results.push({ error: error.message, stack: error.stack });
  }
}
console.log(JSON.stringify(out));
"""


def test_sign_in_parameters_are_checked_when_packaging():
    """infra/auth.js: off by default; each kind of key from its own store,
    by its default name or the one given, the latest version or a pinned
    one; and every value it cannot use refused before anything is deployed,
    with a message naming the parameter."""
    version_id = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
    accepted = [
        ({}, None),
        ({"auth": "off"}, None),
        ({"auth": False}, None),
        ({"auth": "", "authKey": "ignored while off"}, None),
        ({"auth": "hs256"}, ("hs256", "", "")),
        ({"auth": " HS256 "}, ("hs256", "", "")),
        ({"auth": "hs256", "authKey": "chat/prod/jwt"}, ("hs256", "chat/prod/jwt", "")),
        ({"auth": "hs256", "authKeyVersion": version_id}, ("hs256", "", version_id)),
        (
            {"auth": "hs256", "authKey": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-AbCdEf"},
            ("hs256", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-AbCdEf", ""),
        ),
        ({"auth": "public-key"}, ("public-key", "", "")),
        ({"auth": "public-key", "authKey": "/chat/key", "authKeyVersion": "3"}, ("public-key", "/chat/key", "3")),
        ({"auth": "jwks"}, ("jwks", "", "")),
        ({"auth": "jwks", "authKey": "chat-jwks", "authKeyVersion": 12}, ("jwks", "chat-jwks", "12")),
        ({"auth": "hs256", "authMaxTokenLifetime": "86400"}, ("hs256", "", "")),
        (
            {"auth": "jwks", "authJwksUrl": "https://id.example.com/.well-known/jwks.json"},
            ("jwks", "", "", "https://id.example.com/.well-known/jwks.json"),
        ),
    ]
    refused = [
        ({"auth": "rs256"}, "parameter auth"),
        ({"auth": "on"}, "parameter auth"),
        ({"auth": "hs256", "authKey": "-----BEGIN PUBLIC KEY-----"}, "parameter authKey"),
        ({"auth": "jwks", "authKey": '{"keys":[]}'}, "parameter authKey"),
        ({"auth": "public-key", "authKey": "arn:aws:ssm:eu-west-1:123456789012:parameter/key"}, "parameter authKey"),
        ({"auth": "hs256", "authKey": "name}}"}, "parameter authKey"),
        ({"auth": "hs256", "authKeyVersion": "3"}, "parameter authKeyVersion"),
        ({"auth": "jwks", "authKeyVersion": "latest"}, "parameter authKeyVersion"),
        ({"auth": "jwks", "authKeyVersion": version_id}, "parameter authKeyVersion"),
        ({"auth": "hs256", "authNameClaim": "display name"}, "parameter authNameClaim"),
        ({"auth": "hs256", "authRoomsClaim": "my rooms"}, "parameter authRoomsClaim"),
        ({"auth": "hs256", "authRolesClaim": "my roles"}, "parameter authRolesClaim"),
        ({"auth": "jwks", "authJwksUrl": "http://id.example.com/jwks.json"}, "parameter authJwksUrl"),
        ({"auth": "hs256", "authJwksUrl": "https://id.example.com/jwks.json"}, "parameter authJwksUrl"),
        ({"auth": "jwks", "authJwksUrl": "jwks.json"}, "parameter authJwksUrl"),
        ({"auth": "hs256", "authMaxTokenLifetime": "59"}, "parameter authMaxTokenLifetime"),
        ({"auth": "hs256", "authMaxTokenLifetime": "1 day"}, "parameter authMaxTokenLifetime"),
    ]
    cases = [values for values, _ in accepted] + [values for values, _ in refused]
    out = run_node(AUTH_PROBE, cases)
    assert {kind: tuple(spec) for kind, spec in out["kinds"].items()} == KEY_KINDS
    assert out["identitySource"] == IDENTITY_SOURCE
    assert out["optional"] == OPTIONAL_AUTH_VARIABLES
    outcomes = out["results"]
    for (values, expected), outcome in zip(accepted, outcomes):
        assert "error" not in outcome, (values, outcome)
        if expected is None:
            assert outcome["environment"] is None, values
            continue
        kind, key, version, *url = expected
        variable, _ = KEY_KINDS[kind]
        assert outcome["environment"] == {
            variable: expected_reference(kind, key, version),
            "AUTH_JWT_ISSUER": "",
            "AUTH_JWT_AUDIENCE": "",
            "AUTH_NAME_CLAIM": "name",
            "AUTH_ROOMS_CLAIM": "rooms",
            "AUTH_ROLES_CLAIM": "roles",
            "AUTH_JWKS_URL": url[0] if url else "",
            "AUTH_MAX_TOKEN_LIFETIME_SECS": values.get("authMaxTokenLifetime", ""),
        }, values
    for (values, parameter), outcome in zip(refused, outcomes[len(accepted) :]):
        assert "error" in outcome, values
        # Serverless prints the stack: it is just the message.
        assert outcome["stack"] == outcome["error"], values
        assert outcome["error"].startswith(parameter), (values, outcome["error"])
        assert 'docs/deploy.md, "Sign-in"' in outcome["error"], outcome["error"]


def test_sign_in_is_documented(doc, operations):
    """docs/deploy.md: the parameters, off by default; the authorizer's
    variables (equal to what infra/auth.js sets); the identity source.
    docs/operations.md explains every variable."""
    parameters = {row[0]: row for row in markdown_table(doc, "parameter", "how to set it", "default")}
    assert "auth=" in parameters["sign-in"][1] and parameters["sign-in"][2] == "off"
    for row, parameter in (
        ("sign-in key", "authKey"),
        ("sign-in key version", "authKeyVersion"),
        ("sign-in issuer", "authIssuer"),
        ("sign-in audience", "authAudience"),
        ("sign-in name claim", "authNameClaim"),
        ("sign-in rooms claim", "authRoomsClaim"),
        ("sign-in roles claim", "authRolesClaim"),
        ("room access", "roomAccess"),
        ("members-only rooms", "membersOnlyRooms"),
    ):
        assert row in parameters, f"docs/deploy.md, Parameters: no row {row!r}"
        assert f"{parameter}=" in parameters[row][1], row
    documented = {row[0]: row[1] for row in markdown_table(doc, "authorizer variable", "set to")}
    assert set(documented) == KEY_VARIABLES | set(OPTIONAL_AUTH_VARIABLES)
    for variable, parameter in OPTIONAL_AUTH_VARIABLES.items():
        assert parameter in documented[variable], variable
    for kind, (variable, store) in KEY_KINDS.items():
        assert f"auth={kind}" in documented[variable], variable
    assert IDENTITY_SOURCE[0] in doc
    settings = {row[0] for row in markdown_table(operations, "variable", "default", source="docs/operations.md")}
    assert KEY_VARIABLES | set(OPTIONAL_AUTH_VARIABLES) <= settings


def test_outputs(template, stage, doc):
    outputs = template["Outputs"]
    host = "${WebsocketsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    assert outputs["WebSocketUrl"]["Value"] == {"Fn::Sub": f"wss://{host}/{stage}"}
    assert outputs["ManagementApiEndpoint"]["Value"] == {"Fn::Sub": MANAGEMENT_API_ENDPOINT.format(stage=stage)}
    documented = {
        name.strip() for row in markdown_table(doc, "output", "value") for name in row[0].split(",")
    }
    assert documented == set(outputs)


# ---------------------------------------------------------------- monitoring


@pytest.fixture(scope="session")
def dashboard(resources) -> dict:
    (board,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = board["Properties"]["DashboardBody"]["Fn::Sub"]
    # Every ${...} CloudFormation fills in must name a resource (or attribute)
    # of this stack, or a pseudo parameter.
    for reference in re.findall(r"\$\{([^}]+)\}", body):
        if not reference.startswith("AWS::"):
            assert reference.split(".")[0] in resources, reference
    return json.loads(body)


def graphed(dashboard: dict) -> list[tuple[str, str, tuple, str]]:
    """(namespace, metric, dimensions, stat) of every graphed line."""
    lines = []
    for widget in dashboard["widgets"]:
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        for metric in properties["metrics"]:
            options = metric[-1] if isinstance(metric[-1], dict) else {}
            parts = metric[:-1] if options else metric
            namespace, name, *dimensions = parts
            lines.append((namespace, name, tuple(dimensions), options.get("stat", properties["stat"])))
    return lines


def product_dimensions(metric: MetricDef, stage: str) -> list[tuple]:
    if metric.label == "kind":
        return [("Stage", stage, "kind", kind) for kind in FANOUT_KINDS]
    if metric.name == "rooms_refused":
        return [("Stage", stage, "reason", reason) for reason in ROOM_REFUSALS]
    if metric.label == "reason":
        return [("Stage", stage, "reason", reason) for reason in denial_reasons()]
    if metric.label == "action":
        return [("Stage", stage, "action", action) for action in MODERATION_ACTIONS]
    return [("Stage", stage)]


AUTH_PATH = ROOT / "handlers" / "src" / "auth.rs"


def denial_reasons() -> list[str]:
    """The values of `tokens_refused`'s `reason`: `Denial::as_str` in
    handlers/src/auth.rs, in order."""
    body = AUTH_PATH.read_text().split("pub fn as_str(self) -> &'static str {", 1)[1].split("\n    }\n", 1)[0]
    reasons = re.findall(r'Self::\w+ => "([a-z_]+)"', body)
    assert reasons, "handlers/src/auth.rs: no Denial::as_str"
    return reasons


# Metrics only the authorizer records: drawn and alarmed only with sign-in on.
SIGN_IN_METRICS = {"tokens_refused", "rooms_refused"}
# `rooms_refused`'s reasons (handlers/src/routes/connect.rs) and
# `moderation_actions`' actions (the moderation routes).
ROOM_REFUSALS = ["not_a_member", "banned"]
MODERATION_ACTIONS = ["remove", "ban", "delete"]
CONNECT_PATH = ROOT / "handlers" / "src" / "routes" / "connect.rs"


def test_the_denial_reasons_are_the_ones_alarms_js_knows():
    script = "console.log(JSON.stringify(require('./alarms.js').DENIAL_REASONS))"
    assert run_node(script, None) == denial_reasons()


def test_the_room_refusals_and_moderation_actions_are_the_ones_alarms_js_knows():
    script = (
        "const a = require('./alarms.js');"
        "console.log(JSON.stringify([a.ROOM_REFUSALS, a.MODERATION_ACTIONS]))"
    )
    assert run_node(script, None) == [ROOM_REFUSALS, MODERATION_ACTIONS]
    connect = CONNECT_PATH.read_text()
    assert sorted(re.findall(r'refuse\(\s*"([a-z_]+)"', connect)) == sorted(ROOM_REFUSALS)
    assert [route for route, binary in ROUTES.items() if binary == "moderate"] == MODERATION_ACTIONS


def test_dashboard_shows_the_product_metrics(dashboard, stage, metrics, sign_in):
    ours = {(name, dims, stat) for ns, name, dims, stat in graphed(dashboard) if ns == NAMESPACE}
    for counter in deployed(metrics, "Counter"):
        if counter.name in SIGN_IN_METRICS and not sign_in:
            assert counter.name not in {name for name, _, _ in ours}, "drawn without its function"
            continue
        for dims in product_dimensions(counter, stage):
            assert (counter.name, dims, "Sum") in ours, (counter.name, dims)
    for histogram in deployed(metrics, "Histogram"):
        for dims in product_dimensions(histogram, stage):
            for stat in ("p50", "p90", "p99"):
                assert (histogram.name, dims, stat) in ours, (histogram.name, dims, stat)
    # Gauges are the local stack's stand-ins for what AWS measures itself.
    drawn = {name for name, _, _ in ours}
    assert drawn <= {m.name for m in metrics.values() if m.kind != "Gauge"}


def test_dashboard_shows_api_gateway_and_every_function(dashboard, stage, functions):
    lines = graphed(dashboard)
    api = {name for ns, name, dims, _ in lines if ns == "AWS/ApiGateway" and dims == ("ApiId", "${WebsocketsApi}", "Stage", stage)}
    assert {"ConnectCount", "MessageCount", "IntegrationLatency", "ClientError", "IntegrationError", "ExecutionError"} <= api
    for _, prefix in functions.values():
        dims = ("FunctionName", f"${{{prefix}LambdaFunction}}")
        shown = {name for ns, name, d, _ in lines if ns == "AWS/Lambda" and d == dims}
        assert {"Errors", "Throttles", "Duration"} <= shown, prefix
    assert ("AWS/Lambda", "IteratorAge", ("FunctionName", "${StreamProcessorLambdaFunction}"), "Maximum") in lines


def test_dashboard_shows_what_ttl_deletes(dashboard, tables_json):
    """Items each table's TTL deleted: stale connections, and sessions and
    messages past their retention."""
    lines = graphed(dashboard)
    for name, entry in tables_json.items():
        if entry["ttl"] is None:
            continue
        line = ("AWS/DynamoDB", "TimeToLiveDeletedItemCount", ("TableName", f"${{{entry['resource']}}}"), "Sum")
        assert line in lines, name


def test_dashboard_shows_every_alarm(dashboard, resources):
    shown = [
        alarm
        for widget in dashboard["widgets"]
        if widget["type"] == "alarm"
        for alarm in widget["properties"]["alarms"]
    ]
    assert sorted(shown) == sorted(f"${{{name}.Arn}}" for name in of_type(resources, "AWS::CloudWatch::Alarm"))


@pytest.fixture(scope="session")
def alarms(resources, stage) -> dict[str, dict]:
    """Alarm name suffix (after `serverless-chat-<stage>-`) -> properties."""
    prefix = f"{SERVICE}-{stage}-"
    found = {}
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        assert properties["AlarmName"].startswith(prefix), name
        found[properties["AlarmName"].removeprefix(prefix)] = properties
    return found


def expected_alarms(stage: str, functions: dict) -> dict[str, tuple[str, str, list]]:
    """Name suffix -> (namespace, metric, dimensions) of every alarm of a
    deployment of these functions."""
    api = [{"Name": "ApiId", "Value": {"Ref": "WebsocketsApi"}}, {"Name": "Stage", "Value": stage}]
    expected = {}
    for binary, (_, prefix) in functions.items():
        function = [{"Name": "FunctionName", "Value": {"Ref": f"{prefix}LambdaFunction"}}]
        expected[f"{binary}-errors"] = ("AWS/Lambda", "Errors", function)
        expected[f"{binary}-throttles"] = ("AWS/Lambda", "Throttles", function)
    # IntegrationError minus the handshakes $connect refused for the client.
    expected["api-integration-errors"] = [
        ("AWS/ApiGateway", "IntegrationError", api),
        (NAMESPACE, "handshakes_refused", [{"Name": "Stage", "Value": stage}]),
    ]
    expected["api-execution-errors"] = ("AWS/ApiGateway", "ExecutionError", api)
    expected["api-client-errors"] = ("AWS/ApiGateway", "ClientError", api)
    for kind in FANOUT_KINDS:
        expected[f"fanout-failures-{kind}"] = (
            NAMESPACE,
            "fanout_failures",
            [{"Name": "Stage", "Value": stage}, {"Name": "kind", "Value": kind}],
        )
    expected["stream-iterator-age"] = (
        "AWS/Lambda",
        "IteratorAge",
        [{"Name": "FunctionName", "Value": {"Ref": "StreamProcessorLambdaFunction"}}],
    )
    expected["stream-records-failed"] = (NAMESPACE, "stream_records_failed", [{"Name": "Stage", "Value": stage}])
    if "authorizer" in functions:
        expected["tokens-unknown-key"] = (
            NAMESPACE,
            "tokens_refused",
            [{"Name": "Stage", "Value": stage}, {"Name": "reason", "Value": "unknown_key"}],
        )
    expected["stream-records-given-up"] = (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["StreamProcessorFailuresQueue", "QueueName"]}}],
    )
    return expected


def alarm_metrics(alarm: dict) -> list[tuple[str, str, list]]:
    """(namespace, metric, dimensions) of each metric an alarm reads: its
    one metric, or those of its metric math, in order."""
    if "Metrics" not in alarm:
        return [(alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"])]
    return [
        (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Metric"]["Dimensions"])
        for stat in (query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query)
    ]


def alarm_statistic(alarm: dict) -> tuple[str, int]:
    """The statistic and period an alarm reads its metrics with (the same
    for each metric of a metric math alarm)."""
    if "Metrics" not in alarm:
        return alarm["Statistic"], alarm["Period"]
    stats = {(q["MetricStat"]["Stat"], q["MetricStat"]["Period"]) for q in alarm["Metrics"] if "MetricStat" in q}
    assert len(stats) == 1, f"one statistic and period for every metric: {stats}"
    return stats.pop()


def evaluate(expression: str, values: dict[str, float | None]) -> float:
    """A metric math expression of the forms the alarms use, `a - b` of ids
    and `FILL(id, constant)`, on one period's values (`None`: no data)."""
    total, sign = 0.0, 1
    for token in re.findall(r"FILL\(\w+, *-?[0-9.]+\)|\w+|-|\+", expression):
        if token in "+-":
            sign = 1 if token == "+" else -1
            continue
        filled = re.fullmatch(r"FILL\((\w+), *(-?[0-9.]+)\)", token)
        value = values[filled.group(1)] if filled else values[token]
        if value is None:
            assert filled, f"{token} has no data and no FILL: the whole expression would be missing"
            value = float(filled.group(2))
        total += sign * value
    return total


def test_a_refusal_alone_cannot_raise_the_integration_alarm_and_a_failure_does(alarms):
    alarm = alarms["api-integration-errors"]
    (expression,) = [query["Expression"] for query in alarm["Metrics"] if query.get("ReturnData")]
    ids = {query["MetricStat"]["Metric"]["MetricName"]: query["Id"] for query in alarm["Metrics"] if "MetricStat" in query}
    integration, refused = ids["IntegrationError"], ids["handshakes_refused"]

    def fires(errors, refusals):
        value = evaluate(expression, {integration: errors, refused: refusals})
        return value > alarm["Threshold"]

    assert not fires(3, 3), "three bad ?room= handshakes, nothing else"
    assert not fires(None, None), "no traffic"
    assert fires(4, 3), "three refusals and one failure of ours"
    assert fires(1, None), "a 5XX with no refusal at all"
    assert not fires(None, 2), "refusals counted, API Gateway's datapoint not in yet"


def test_alarms_watch_the_chat_path(alarms, stage, functions):
    expected = expected_alarms(stage, functions)
    assert set(alarms) == set(expected)
    for suffix, watched in expected.items():
        alarm = alarms[suffix]
        watched = watched if isinstance(watched, list) else [watched]
        assert alarm_metrics(alarm) == watched, suffix
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", suffix
        assert alarm["TreatMissingData"] == "notBreaching", suffix
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], suffix
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], suffix
    for kind in FANOUT_KINDS:
        failures = alarms[f"fanout-failures-{kind}"]
        assert (failures["Statistic"], failures["Period"], failures["Threshold"]) == ("Sum", 300, 0)
        assert failures["EvaluationPeriods"] == 1


def test_product_alarms_watch_metrics_the_code_writes(alarms, metrics, stage):
    for suffix, alarm in alarms.items():
        for namespace, name, watched_dimensions in alarm_metrics(alarm):
            if namespace != NAMESPACE:
                continue
            metric = metrics.get(name)
            assert metric is not None and metric.kind == "Counter", suffix
            dimensions = tuple(part for d in watched_dimensions for part in (d["Name"], d["Value"]))
            assert dimensions in product_dimensions(metric, stage), suffix


def alarm_topic_problems(resources: dict) -> list[str]:
    """Why an alarm's notifications would not reach its topic: a target that
    is not a topic of this stack, a topic encrypted with alias/aws/sns (whose
    key policy CloudWatch cannot use), or a key of unknown policy or whose
    policy does not let cloudwatch.amazonaws.com use it."""
    problems = []
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        targets = [
            target
            for actions in ("AlarmActions", "OKActions", "InsufficientDataActions")
            for target in properties.get(actions, [])
        ]
        for target in targets:
            topic_id = target.get("Ref") if isinstance(target, dict) else None
            topic = resources.get(topic_id) if topic_id else None
            if topic is None or topic["Type"] != "AWS::SNS::Topic":
                problems.append(f"{name}: notifies {target}, not a topic of this stack")
                continue
            key = topic["Properties"].get("KmsMasterKeyId")
            if key is None:
                continue
            if "alias/aws/sns" in json.dumps(key):
                problems.append(f"{topic_id}: encrypted with alias/aws/sns, which CloudWatch cannot use")
                continue
            key_id = key.get("Ref") if isinstance(key, dict) else None
            key_resource = resources.get(key_id) if key_id else None
            if key_resource is None or key_resource["Type"] != "AWS::KMS::Key":
                problems.append(f"{topic_id}: key {key} is not a key of this stack; its policy is unknown")
                continue
            if not allows_cloudwatch(key_resource["Properties"]["KeyPolicy"]):
                problems.append(f"{topic_id}: the policy of {key_id} does not let CloudWatch use it")
    return problems


def allows_cloudwatch(policy: dict) -> bool:
    for statement in policy["Statement"]:
        principals = as_list(statement.get("Principal", {}).get("Service", []))
        actions = set(as_list(statement.get("Action", [])))
        if (
            statement["Effect"] == "Allow"
            and "cloudwatch.amazonaws.com" in principals
            and "kms:Decrypt" in actions
            and actions & {"kms:GenerateDataKey*", "kms:GenerateDataKey"}
        ):
            return True
    return False


def test_alarm_notifications_can_reach_the_topic(resources):
    assert not alarm_topic_problems(resources)
    for name, topic in of_type(resources, "AWS::SNS::Topic").items():
        assert "alias/aws/sns" not in json.dumps(topic), name


def test_the_topic_check_catches_what_would_silence_the_alarms(resources):
    """The check above on two broken copies of the stack: the AWS-managed key
    (as the stack once had), and a key whose policy leaves CloudWatch out."""
    managed = json.loads(json.dumps(resources))
    managed["AlarmTopic"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    problems = alarm_topic_problems(managed)
    assert problems and all("alias/aws/sns" in problem for problem in problems)

    no_cloudwatch = json.loads(json.dumps(resources))
    key_id = no_cloudwatch["AlarmTopic"]["Properties"]["KmsMasterKeyId"]["Ref"]
    policy = no_cloudwatch[key_id]["Properties"]["KeyPolicy"]
    policy["Statement"] = [s for s in policy["Statement"] if "Service" not in s["Principal"]]
    problems = alarm_topic_problems(no_cloudwatch)
    assert problems and all("does not let CloudWatch use it" in problem for problem in problems)


def test_alarm_topic_key(resources):
    """The topic's own key: administered through the account's IAM policies,
    usable by CloudWatch for this account's alarms only, rotated."""
    key_id = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]["Ref"]
    key = resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    root = statements["AccountIamPolicies"]
    assert root["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    cloudwatch = statements["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(as_list(cloudwatch["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert set(statements) == {"AccountIamPolicies", "CloudWatchAlarmsPublish"}


def fires_when(alarm: dict) -> str:
    """An alarm's condition, as docs/operations.md writes it."""
    statistic, seconds = alarm_statistic(alarm)
    period = f"{seconds // 60} min"
    condition = f"{statistic} > {alarm['Threshold']:g}"
    evaluated, needed = alarm["EvaluationPeriods"], alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])
    if evaluated == 1:
        return f"{condition} over {period}"
    return f"{condition} in {needed} of {evaluated} periods of {period}"


def test_every_alarm_has_a_runbook_entry(alarms, operations, sign_in):
    """One row per alarm, both ways: the runbook lists every alarm of the
    sign-in package, and the default package has all but the authorizer's."""
    rows = markdown_table(operations, "alarm", "metric", "fires when", source="docs/operations.md")
    documented = {row[0]: row for row in rows}
    assert len(documented) == len(rows), "an alarm documented twice"
    sign_in_only = {f"{binary}-{kind}" for binary in SIGN_IN_FUNCTIONS for kind in ("errors", "throttles")}
    sign_in_only.add("tokens-unknown-key")
    assert sign_in_only <= set(documented), "docs/operations.md, Alarms: the authorizer's alarms"
    if not sign_in:
        assert not sign_in_only & set(alarms)
    assert set(documented) == set(alarms) | sign_in_only, "docs/operations.md, Alarms: one row per alarm, by name suffix"
    for suffix, alarm in alarms.items():
        _, metric, condition, means, action = documented[suffix][:5]
        for namespace, name, _ in alarm_metrics(alarm):
            assert f"{namespace} {name}" in metric, suffix
        assert condition == fires_when(alarm), suffix
        assert means and action, f"{suffix}: say what it means and what to do"


# ---------------------------------------------------------------- artifacts


@pytest.mark.parametrize("binary", FUNCTIONS)
def test_artifact_is_a_zip_with_an_executable_aarch64_bootstrap(binary):
    # The sign-in package deploys every function.
    resources = package_file(SIGN_IN_ON, TEMPLATE_FILE)["Resources"]
    state = package_file(SIGN_IN_ON, STATE_FILE)
    key, prefix = FUNCTIONS[binary]
    artifact = INFRA / state["service"]["functions"][key]["package"]["artifact"]
    assert artifact == INFRA / "dist" / f"{binary}.zip"
    assert artifact.is_file(), f"{artifact} missing: run infra/build.sh"
    with zipfile.ZipFile(artifact) as archive:
        assert archive.testzip() is None
        info = archive.getinfo("bootstrap")
        assert (info.external_attr >> 16) & stat.S_IXUSR, "bootstrap is not executable"
        binary_bytes = archive.read("bootstrap")
    head = binary_bytes[:20]
    assert head[:4] == b"\x7fELF", "bootstrap is not an ELF executable"
    assert int.from_bytes(head[18:20], "little") == 183, "bootstrap is not built for aarch64"
    # provided.al2023 has glibc 2.34: the binary must not need a newer one.
    needed = {
        tuple(int(part) for part in match.split(b"."))
        for match in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", binary_bytes)
    }
    assert needed and max(needed) <= AL2023_GLIBC, f"needs glibc {max(needed)}"
    # The deployment bucket key carries the zip's own name, so no two
    # functions' code can overwrite each other.
    s3_key = resources[f"{prefix}LambdaFunction"]["Properties"]["Code"]["S3Key"]
    assert s3_key.endswith(f"/{binary}.zip")
