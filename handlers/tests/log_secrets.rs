//! No configuration may log a token, a message text or a source address:
//! every function binary is run as Lambda runs it (a Runtime API stand-in,
//! JSON logs) at the most verbose level a deployment may set, and past it,
//! on events that carry all three, against a real DynamoDB engine and a
//! real HTTP Management API; its whole output is searched for them.

#![allow(clippy::expect_used)] // a failed step fails the test

use serde_json::{Value, json};
use testkit::runtime_api::{Invocation, function_variables, invoke_binary};
use testkit::{FakeManagementApi, TestDynamo, fixtures, tokens};

/// A chat message nobody may read in a log.
const TEXT: &str = "the secret plan is under the mat 7f3a9";
/// A client's address (TEST-NET-2), in `sourceIp` and `X-Forwarded-For`.
const ADDRESS: &str = "198.51.100.73";

/// Lambda's log levels worth trying: the most verbose a deployment may set
/// (infra/log-level.js) and one past it, which must change nothing.
const LEVELS: [&str; 2] = ["DEBUG", "TRACE"];

struct Environment {
    db: TestDynamo,
    api: FakeManagementApi,
    token: String,
}

impl Environment {
    async fn start() -> Self {
        Self {
            db: TestDynamo::start().await,
            api: FakeManagementApi::start().await,
            token: tokens::hs256(&tokens::claims("user-42", Some("Ada")), tokens::SECRET),
        }
    }

    /// What Lambda and infra/serverless.yml set, at `level`, with this
    /// machine's DynamoDB and Management API, and sign-in's key.
    fn variables(&self, level: &str) -> Vec<(&'static str, String)> {
        let mut variables = function_variables(&self.db, &self.api, level);
        // lambda_runtime's own subscriber read this too; ours must not.
        variables.push(("RUST_LOG", "trace".to_owned()));
        variables.push(("AUTH_JWT_SECRET", tokens::SECRET.to_owned()));
        variables
    }

    /// Runs `function` on `events` at `level`; its output, once it has
    /// answered them all without an invocation error.
    async fn run(&self, function: &str, level: &str, events: Vec<Value>) -> String {
        let binary = match function {
            "connect" => env!("CARGO_BIN_EXE_connect"),
            "disconnect" => env!("CARGO_BIN_EXE_disconnect"),
            "sendmessage" => env!("CARGO_BIN_EXE_sendmessage"),
            "history" => env!("CARGO_BIN_EXE_history"),
            "default" => env!("CARGO_BIN_EXE_default"),
            "moderate" => env!("CARGO_BIN_EXE_moderate"),
            "authorizer" => env!("CARGO_BIN_EXE_authorizer"),
            "reconcile" => env!("CARGO_BIN_EXE_reconcile"),
            other => panic!("no function {other}"),
        };
        let count = events.len();
        let (answers, output) = invoke_binary(binary, events, &self.variables(level)).await;
        assert_eq!(answers.len(), count, "{function}: {output}");
        for answer in &answers {
            assert!(
                matches!(answer, Invocation::Response { .. }),
                "{function} at {level}: {answer:?}\n{output}"
            );
        }
        output
    }

    /// Every secret the events carry.
    fn secrets(&self) -> Vec<&str> {
        let signature = self.token.rsplit('.').next().expect("a signature");
        let claims = self.token.split('.').nth(1).expect("claims");
        vec![self.token.as_str(), signature, claims, TEXT, ADDRESS]
    }
}

/// A WebSocket event of `fixture` for connection `id`, from [`ADDRESS`].
fn websocket(fixture: &str, id: &str, adjust: impl FnOnce(&mut Value)) -> Value {
    let event = fixtures::websocket_event(fixture, id, |context| {
        context["identity"]["sourceIp"] = json!(ADDRESS);
        let now = chrono::Utc::now().timestamp_millis();
        context["connectedAt"] = json!(now - 60_000);
        context["requestTimeEpoch"] = json!(now);
    });
    let mut event = serde_json::to_value(event).expect("JSON");
    adjust(&mut event);
    event
}

fn with_body(body: Value) -> impl FnOnce(&mut Value) {
    move |event| event["body"] = json!(body.to_string())
}

#[tokio::test]
async fn no_function_logs_a_token_a_message_or_an_address_at_any_level() {
    let env = Environment::start().await;
    for (n, level) in LEVELS.iter().enumerate() {
        let id = format!("LogsLogsLogs{n:02}=");
        let token = env.token.clone();
        let connect = websocket("connect.json", &id, |event| {
            event["queryStringParameters"] = json!({ "token": token, "name": "Ada" });
            event["headers"]["X-Forwarded-For"] = json!(ADDRESS);
        });
        let authorize =
            serde_json::to_value(fixtures::authorizer_event(Some(&env.token), None)).expect("JSON");
        let chat = json!({ "action": "sendmessage", "message": TEXT });
        let runs = [
            ("authorizer", vec![authorize]),
            ("connect", vec![connect]),
            (
                "sendmessage",
                vec![
                    websocket("message.json", &id, with_body(chat)),
                    // Refused: too long, and the answer quotes nothing of it.
                    websocket(
                        "message.json",
                        &id,
                        with_body(json!({ "action": "sendmessage", "message": TEXT.repeat(400) })),
                    ),
                ],
            ),
            (
                "history",
                vec![websocket("message.json", &id, |event| {
                    event["requestContext"]["routeKey"] = json!("history");
                    event["body"] = json!(json!({ "action": "history" }).to_string());
                })],
            ),
            (
                // A moderator's reasons are the room's to read, not the log's.
                "moderate",
                [
                    json!({ "action": "ban", "user_id": "user-7", "minutes": 5, "reason": TEXT }),
                    json!({ "action": "remove", "connection_id": "gone=", "reason": TEXT }),
                ]
                .map(|body| {
                    websocket("message.json", &id, |event| {
                        event["requestContext"]["routeKey"] = body["action"].clone();
                        event["requestContext"]["authorizer"] =
                            json!({ "user_id": "user-42", "moderator": true });
                        event["body"] = json!(body.to_string());
                    })
                })
                .into(),
            ),
            (
                "default",
                vec![websocket("message.json", &id, |event| {
                    event["requestContext"]["routeKey"] = json!("$default");
                    event["body"] = json!(json!({ "action": TEXT }).to_string());
                })],
            ),
            (
                "disconnect",
                vec![websocket("disconnect.json", &id, |_| {})],
            ),
            ("reconcile", vec![json!({ "source": "aws.events" })]),
        ];
        let mut logged = 0;
        for (function, events) in runs {
            let output = env.run(function, level, events).await;
            logged += output.matches(r#""level":"#).count();
            for secret in env.secrets() {
                assert!(
                    !output.contains(secret),
                    "{function} at {level} logged {secret:?}:\n{output}"
                );
            }
        }
        // Logs were written and read (the functions log their work at
        // INFO), so the search above had something to search.
        assert!(logged >= 5, "only {logged} log lines at {level}");
    }
    // The functions did their work: the ban was stored with its reason, and
    // the message went out, so their text was there to be logged.
    let bans = testkit::item::scan(&env.db.client, &env.db.tables.moderation).await;
    assert!(
        bans.iter()
            .any(|row| testkit::item::string(row, "entry") == "ban#user-7"
                && testkit::item::string(row, "reason") == TEXT)
    );
    assert!(
        env.api
            .posts()
            .iter()
            .any(|(_, frame)| frame["text"] == TEXT)
    );
}
