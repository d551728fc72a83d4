"""Checks the CloudFormation template that `serverless package` generated.

infra/check.sh runs infra/build.sh and then `serverless package` (offline,
dummy credentials) before this, so infra/.serverless/ holds the template and
infra/dist/ the five zips. Nothing here talks to AWS.

The permission table below is the one source of truth for what each function
may do. It must equal what the template grants and what docs/deploy.md
documents; both are checked.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parent.parent
ROOT = INFRA.parent
TEMPLATE_PATH = INFRA / ".serverless" / "cloudformation-template-update-stack.json"
STATE_PATH = INFRA / ".serverless" / "serverless-state.json"
STREAM_FILTER_PATH = INFRA / "stream-filter.json"
DOC_PATH = ROOT / "docs" / "deploy.md"

SERVICE = "serverless-chat"
# The glibc of Lambda's provided.al2023 runtime.
AL2023_GLIBC = (2, 34)
NAMESPACE = "ServerlessChat"

# Deployed binary -> (function key in serverless.yml, logical-id prefix).
FUNCTIONS = {
    "connect": ("connect", "Connect"),
    "disconnect": ("disconnect", "Disconnect"),
    "sendmessage": ("sendmessage", "Sendmessage"),
    "default": ("default", "Default"),
    "stream-processor": ("streamProcessor", "StreamProcessor"),
}

# Resource labels, as docs/deploy.md writes them.
OWN_LOG_GROUP = "own log group"
POST_TO_CONNECTIONS = "{api}/{stage}/POST/@connections/*"
SESSION_STREAM = "SessionHistory stream"
FAILURES_QUEUE = "stream failures queue"

LOGS = {
    ("logs:CreateLogStream", OWN_LOG_GROUP),
    ("logs:PutLogEvents", OWN_LOG_GROUP),
}

# What each function's code calls (handlers/src/store.rs, management.rs,
# fanout.rs; stream-processor/src/lib.rs), as (IAM action, resource) pairs.
PERMISSIONS: dict[str, set[tuple[str, str]]] = {
    # TransactWriteItems of two Puts, one conditional: PutItem per table.
    "connect": LOGS
    | {
        ("dynamodb:PutItem", "ActiveConnections"),
        ("dynamodb:PutItem", "SessionHistory"),
    },
    "disconnect": LOGS
    | {
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("dynamodb:UpdateItem", "SessionHistory"),
    },
    "sendmessage": LOGS
    | {
        ("dynamodb:PutItem", "MessageHistory"),
        ("dynamodb:Scan", "ActiveConnections"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
    },
    "default": set(LOGS),
    "stream-processor": LOGS
    | {
        ("dynamodb:DescribeStream", SESSION_STREAM),
        ("dynamodb:GetRecords", SESSION_STREAM),
        ("dynamodb:GetShardIterator", SESSION_STREAM),
        ("dynamodb:ListStreams", SESSION_STREAM),
        ("dynamodb:UpdateItem", "SessionHistory"),
        ("dynamodb:Scan", "ActiveConnections"),
        ("dynamodb:DeleteItem", "ActiveConnections"),
        ("execute-api:ManageConnections", POST_TO_CONNECTIONS),
        ("sqs:SendMessage", FAILURES_QUEUE),
    },
}

EMF_COUNTERS = [
    "messages_sent",
    "messages_rejected",
    "fanout_failures",
    "connections_pruned",
    "connects",
    "disconnects",
    "presence_frames_sent",
    "stream_records_failed",
]
EMF_HISTOGRAMS = ["fanout_recipients", "fanout_latency", "session_duration"]
# Emitted with a second dimension, `kind` (handlers/src/fanout.rs).
FANOUT_METRICS = {"fanout_recipients", "fanout_latency", "fanout_failures", "connections_pruned"}
FANOUT_KINDS = ("message", "presence")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def template() -> dict:
    if not TEMPLATE_PATH.exists():
        pytest.fail(f"{TEMPLATE_PATH} is missing: run infra/check.sh (it packages first)")
    return json.loads(TEMPLATE_PATH.read_text())


@pytest.fixture(scope="session")
def resources(template: dict) -> dict:
    return template["Resources"]


@pytest.fixture(scope="session")
def state() -> dict:
    return json.loads(STATE_PATH.read_text())


@pytest.fixture(scope="session")
def stage(state: dict) -> str:
    return state["service"]["provider"]["stage"]


@pytest.fixture(scope="session")
def doc() -> str:
    return DOC_PATH.read_text()


def of_type(resources: dict, kind: str) -> dict:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def as_list(value):
    return value if isinstance(value, list) else [value]


def markdown_table(doc: str, *headers: str) -> list[list[str]]:
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
    pytest.fail(f"docs/deploy.md has no table headed {' | '.join(headers)}")


# ---------------------------------------------------------------- IAM


def resource_label(resource, binary: str, stage: str) -> str:
    """Names a policy resource as docs/deploy.md does; anything unexpected
    (a wildcard, another function's log group, a literal ARN) comes back as
    itself and so fails the comparison."""
    prefix = FUNCTIONS[binary][1]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        known = {
            ("ActiveConnectionsTable", "Arn"): "ActiveConnections",
            ("SessionHistoryTable", "Arn"): "SessionHistory",
            ("MessageHistoryTable", "Arn"): "MessageHistory",
            ("SessionHistoryTable", "StreamArn"): SESSION_STREAM,
            ("StreamProcessorFailuresQueue", "Arn"): FAILURES_QUEUE,
            (f"{prefix}LogGroup", "Arn"): OWN_LOG_GROUP,
        }
        return known.get((name, attribute), f"{name}.{attribute}")
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        expected = (
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            f"${{WebsocketsApi}}/{stage}/POST/@connections/*"
        )
        if resource["Fn::Sub"] == expected:
            return POST_TO_CONNECTIONS
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


def test_each_function_has_its_own_role(resources):
    roles = of_type(resources, "AWS::IAM::Role")
    assert set(roles) == {f"{prefix}Role" for _, prefix in FUNCTIONS.values()}, (
        "exactly one role per function, and no shared default role"
    )
    assert not of_type(resources, "AWS::IAM::Policy")
    assert not of_type(resources, "AWS::IAM::ManagedPolicy")
    for binary, (_, prefix) in FUNCTIONS.items():
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
def test_role_grants_exactly_what_the_code_uses(resources, stage, binary):
    role = resources[f"{FUNCTIONS[binary][1]}Role"]
    assert granted(role, binary, stage) == PERMISSIONS[binary]


def test_own_log_group_is_the_functions(resources):
    for binary, (_, prefix) in FUNCTIONS.items():
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
    assert 1 <= properties["BatchSize"] <= 100
    assert properties["StartingPosition"] == "LATEST"
    destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["StreamProcessorFailuresQueue", "Arn"]}
    assert resources["StreamProcessorFailuresQueue"]["Type"] == "AWS::SQS::Queue"
    assert "StreamProcessorRole" in mapping.get("DependsOn", [])


def test_stream_filter_is_the_shared_file(resources):
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    deployed = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert deployed == json.loads(STREAM_FILTER_PATH.read_text())


# ---------------------------------------------------------------- tables


def key_schema(table: dict) -> tuple:
    properties = table["Properties"]
    return (
        [(k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]],
        [(a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]],
    )


def test_tables(resources, stage):
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert set(tables) == {"ActiveConnectionsTable", "SessionHistoryTable", "MessageHistoryTable"}
    keys = {
        "ActiveConnectionsTable": "connection_id",
        "SessionHistoryTable": "connection_id",
        "MessageHistoryTable": "message_id",
    }
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["TableName"] == f"{SERVICE}-{stage}-{name.removesuffix('Table')}"
        assert key_schema(table) == ([(keys[name], "HASH")], [(keys[name], "S")])
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"] == {"SSEEnabled": True}
    active = tables["ActiveConnectionsTable"]["Properties"]
    assert active["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    sessions = tables["SessionHistoryTable"]["Properties"]
    assert sessions["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    for history in ("SessionHistoryTable", "MessageHistoryTable"):
        pitr = tables[history]["Properties"]["PointInTimeRecoverySpecification"]
        assert pitr == {"PointInTimeRecoveryEnabled": True}
    assert "StreamSpecification" not in active
    assert "StreamSpecification" not in tables["MessageHistoryTable"]["Properties"]


# ---------------------------------------------------------------- functions


def test_functions(resources, stage, doc):
    sizes = {row[0]: row for row in markdown_table(doc, "function", "memory (mb)", "timeout (s)")}
    for binary, (_, prefix) in FUNCTIONS.items():
        properties = resources[f"{prefix}LambdaFunction"]["Properties"]
        assert properties["Runtime"] == "provided.al2023", binary
        assert properties["Architectures"] == ["arm64"], binary
        assert properties["Handler"] == "bootstrap", binary
        assert properties["LoggingConfig"] == {"LogFormat": "JSON"}, binary
        variables = properties["Environment"]["Variables"]
        assert variables["ACTIVE_CONNECTIONS_TABLE"] == {"Ref": "ActiveConnectionsTable"}
        assert variables["SESSION_HISTORY_TABLE"] == {"Ref": "SessionHistoryTable"}
        assert variables["MESSAGE_HISTORY_TABLE"] == {"Ref": "MessageHistoryTable"}
        assert variables["METRICS_NAMESPACE"] == NAMESPACE
        assert variables["STAGE"] == stage
        # The documented memory and timeout are the deployed ones.
        assert binary in sizes, f"docs/deploy.md sizes no {binary}"
        assert int(sizes[binary][1]) == properties["MemorySize"], binary
        assert int(sizes[binary][2]) == properties["Timeout"], binary
    # API Gateway gives up on an integration after 29 s.
    for binary in ("connect", "disconnect", "sendmessage", "default"):
        assert resources[f"{FUNCTIONS[binary][1]}LambdaFunction"]["Properties"]["Timeout"] <= 29
    processor = resources["StreamProcessorLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert processor["MANAGEMENT_API_ENDPOINT"] == {
        "Fn::Sub": f"https://${{WebsocketsApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{stage}"
    }


def test_log_groups_have_a_retention(resources):
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert {f"{prefix}LogGroup" for _, prefix in FUNCTIONS.values()} <= set(groups)
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays", 0) > 0, name


# ---------------------------------------------------------------- WebSocket API


def test_websocket_api_and_routes(resources, stage):
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    (api_stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    assert api_stage["Properties"]["StageName"] == stage

    integrations = of_type(resources, "AWS::ApiGatewayV2::Integration")
    routes = {r["Properties"]["RouteKey"]: (n, r) for n, r in of_type(resources, "AWS::ApiGatewayV2::Route").items()}
    targets = {
        "$connect": "Connect",
        "$disconnect": "Disconnect",
        "sendmessage": "Sendmessage",
        "$default": "Default",
    }
    assert set(routes) == set(targets)
    for key, prefix in targets.items():
        _, route = routes[key]
        integration = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = json.dumps(integrations[integration]["Properties"]["IntegrationUri"])
        assert f"{prefix}LambdaFunction" in uri, key

    responses = {
        r["Properties"]["RouteId"]["Ref"]: r["Properties"]
        for r in of_type(resources, "AWS::ApiGatewayV2::RouteResponse").values()
    }
    for key in ("sendmessage", "$default"):
        name, route = routes[key]
        assert route["Properties"]["RouteResponseSelectionExpression"] == "$default", key
        assert responses[name]["RouteResponseKey"] == "$default", key
    for key in ("$connect", "$disconnect"):
        name, route = routes[key]
        assert "RouteResponseSelectionExpression" not in route["Properties"], key
        assert name not in responses, key


def test_outputs(template, stage):
    outputs = template["Outputs"]
    host = "${WebsocketsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    assert outputs["WebSocketUrl"]["Value"] == {"Fn::Sub": f"wss://{host}/{stage}"}
    assert outputs["ManagementApiEndpoint"]["Value"] == {"Fn::Sub": f"https://{host}/{stage}"}


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


def test_dashboard_shows_the_product_metrics(dashboard, stage):
    lines = graphed(dashboard)
    ours = {(name, dims, stat) for ns, name, dims, stat in lines if ns == NAMESPACE}

    def dimension_sets(metric):
        if metric in FANOUT_METRICS:
            return [("Stage", stage, "kind", kind) for kind in FANOUT_KINDS]
        return [("Stage", stage)]

    for counter in EMF_COUNTERS:
        for dims in dimension_sets(counter):
            assert (counter, dims, "Sum") in ours, (counter, dims)
    for histogram in EMF_HISTOGRAMS:
        for dims in dimension_sets(histogram):
            for stat in ("p50", "p90", "p99"):
                assert (histogram, dims, stat) in ours, (histogram, dims, stat)


def test_dashboard_shows_api_gateway_and_every_function(dashboard, stage):
    lines = graphed(dashboard)
    api = {name for ns, name, dims, _ in lines if ns == "AWS/ApiGateway" and dims == ("ApiId", "${WebsocketsApi}", "Stage", stage)}
    assert {"ConnectCount", "MessageCount", "IntegrationLatency", "ClientError", "IntegrationError", "ExecutionError"} <= api
    for _, prefix in FUNCTIONS.values():
        dims = ("FunctionName", f"${{{prefix}LambdaFunction}}")
        shown = {name for ns, name, d, _ in lines if ns == "AWS/Lambda" and d == dims}
        assert {"Errors", "Throttles", "Duration"} <= shown, prefix
    assert ("AWS/Lambda", "IteratorAge", ("FunctionName", "${StreamProcessorLambdaFunction}"), "Maximum") in lines


def test_alarms(resources, stage):
    alarms = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    iterator = [a for a in alarms if a["MetricName"] == "IteratorAge"]
    assert iterator and iterator[0]["Namespace"] == "AWS/Lambda"
    assert iterator[0]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "StreamProcessorLambdaFunction"}}]
    failed = [a for a in alarms if a["MetricName"] == "stream_records_failed"]
    assert failed and failed[0]["Namespace"] == NAMESPACE
    assert failed[0]["Dimensions"] == [{"Name": "Stage", "Value": stage}]
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm["AlarmName"]


# ---------------------------------------------------------------- artifacts


@pytest.mark.parametrize("binary", FUNCTIONS)
def test_artifact_is_a_zip_with_an_executable_aarch64_bootstrap(resources, state, binary):
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
