//! The functions `chat-bench lambda` knows, and how each one's first answer
//! is judged. Their names, memory and timeouts are infra/functions.json's,
//! the one file infra/serverless.yml and infra/auth.js read them from too;
//! what the bench sends each one and expects back is [`Exercise`]'s.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use serde::Deserialize;
use serde_json::Value;

/// Every deployed function's `memorySize` and `timeout`, by its key in
/// infra/serverless.yml.
const FUNCTIONS_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../infra/functions.json"
));

/// Lambda's limits on `memorySize` (MB) and `timeout` (seconds).
const MEMORY_MB: std::ops::RangeInclusive<u32> = 128..=10_240;
const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=900;

/// One deployed function, as infra/functions.json sizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The binary, and cargo lambda's directory under `target/lambda`: the
    /// key in kebab case (`streamProcessor` is `stream-processor`).
    pub name: String,
    /// `memorySize`, in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory_mb: u32,
    /// `timeout`: each invocation's deadline.
    pub timeout: Duration,
    /// How the bench starts it; `None`: it does not (reconcile, whose
    /// event is a schedule's, and fanout, whose event is a task of a room
    /// that would have to be planted first, are known but not exercised).
    pub exercise: Option<Exercise>,
}

/// One entry of infra/functions.json.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sizing {
    memory_size: u32,
    timeout: u64,
}

static KNOWN: LazyLock<anyhow::Result<Vec<Function>>> = LazyLock::new(|| parse(FUNCTIONS_JSON));

/// The `--functions` default: every function the bench can start.
static EXERCISED: LazyLock<String> = LazyLock::new(|| {
    known()
        .unwrap_or_default()
        .iter()
        .filter(|function| function.exercise.is_some())
        .map(|function| function.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
});

/// infra/functions.json's functions, in the order of their keys.
fn known() -> anyhow::Result<&'static [Function]> {
    KNOWN.as_deref().map_err(|problem| anyhow!("{problem:#}"))
}

/// The one named `name` (its binary's name).
pub fn named(name: &str) -> anyhow::Result<&'static Function> {
    known()?
        .iter()
        .find(|function| function.name == name)
        .with_context(|| format!("infra/functions.json has no {name} function"))
}

/// Every function the bench can start, comma-separated.
pub fn exercised() -> &'static str {
    &EXERCISED
}

/// `--functions`' parser: infra/functions.json's names (those the bench
/// does not start are hidden from the help, and refused with the reason).
pub fn parser() -> impl TypedValueParser<Value = &'static Function> {
    let names = known().unwrap_or_default().iter().map(|function| {
        PossibleValue::new(function.name.as_str()).hide(function.exercise.is_none())
    });
    PossibleValuesParser::new(names).try_map(|name| {
        let function = named(&name)?;
        if function.exercise.is_none() {
            bail!(
                "the bench has no event for {name} (it is not exercised); leave it out of \
                 --functions"
            );
        }
        anyhow::Ok(function)
    })
}

fn parse(json: &str) -> anyhow::Result<Vec<Function>> {
    let sizes: BTreeMap<String, Sizing> =
        serde_json::from_str(json).context("infra/functions.json does not parse")?;
    sizes
        .into_iter()
        .map(|(key, sizing)| {
            if !MEMORY_MB.contains(&sizing.memory_size) || !TIMEOUT_SECS.contains(&sizing.timeout) {
                bail!(
                    "infra/functions.json sizes {key} at {} MB and {} s: Lambda allows 128 to \
                     10240 MB and 1 to 900 s",
                    sizing.memory_size,
                    sizing.timeout
                );
            }
            let name = binary_name(&key);
            Ok(Function {
                exercise: Exercise::of(&name),
                name,
                memory_mb: sizing.memory_size,
                timeout: Duration::from_secs(sizing.timeout),
            })
        })
        .collect()
}

/// A function's key in infra/serverless.yml (camelCase) as its binary's
/// name (kebab-case): `streamProcessor` is `stream-processor`.
fn binary_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len() + 2);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            name.push('-');
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// How the bench invokes a function for its cold start, and what the first
/// answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exercise {
    /// The `$connect` authorizer, with a signed-in user's token: `Allow`.
    Authorizer,
    /// `$connect` of a stranger: 2xx.
    Connect,
    /// `$disconnect` of that stranger: 2xx.
    Disconnect,
    /// A chat message from the cold client: 2xx (and delivered once).
    Sendmessage,
    /// `history`: a `history` frame.
    History,
    /// `$default` with a ping: a `pong` frame.
    Default,
    /// `delete` of a message that does not exist: an `error` frame saying
    /// `not_found`.
    Moderate,
    /// A SessionHistory batch of one INSERT: no batch item failures.
    StreamProcessor,
}

/// The frame a two-way route answers with: its `type` and, for an `error`,
/// its `code`.
struct Frame {
    kind: &'static str,
    code: Option<&'static str>,
}

impl Exercise {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "authorizer" => Self::Authorizer,
            "connect" => Self::Connect,
            "disconnect" => Self::Disconnect,
            "sendmessage" => Self::Sendmessage,
            "history" => Self::History,
            "default" => Self::Default,
            "moderate" => Self::Moderate,
            "stream-processor" => Self::StreamProcessor,
            _ => return None,
        })
    }

    /// What a successful first invocation answers, or why it is a failure.
    pub fn judge(self, body: &str) -> anyhow::Result<String> {
        let answer: Value = serde_json::from_str(body)
            .map_err(|problem| anyhow!("answer is not JSON ({problem}): {body}"))?;
        match self {
            Self::Authorizer => allowed(&answer, body),
            Self::StreamProcessor => no_batch_item_failures(&answer, body),
            Self::Connect | Self::Disconnect | Self::Sendmessage => {
                proxy_response(&answer, body, None)
            }
            Self::Default => proxy_response(
                &answer,
                body,
                Some(Frame {
                    kind: "pong",
                    code: None,
                }),
            ),
            Self::History => proxy_response(
                &answer,
                body,
                Some(Frame {
                    kind: "history",
                    code: None,
                }),
            ),
            Self::Moderate => proxy_response(
                &answer,
                body,
                Some(Frame {
                    kind: "error",
                    code: Some("not_found"),
                }),
            ),
        }
    }
}

fn allowed(answer: &Value, body: &str) -> anyhow::Result<String> {
    let effect = answer
        .pointer("/policyDocument/Statement/0/Effect")
        .and_then(Value::as_str);
    match effect {
        Some("Allow") => Ok("Allow".into()),
        _ => bail!("the authorizer did not allow: {body}"),
    }
}

fn no_batch_item_failures(answer: &Value, body: &str) -> anyhow::Result<String> {
    let failures = answer
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if failures == 0 {
        Ok("no batch item failures".into())
    } else {
        bail!("{failures} batch item failures: {body}")
    }
}

/// A 2xx proxy response; for a two-way route, with the `expected` frame.
fn proxy_response(answer: &Value, body: &str, expected: Option<Frame>) -> anyhow::Result<String> {
    let Some(code @ 200..=299) = answer.get("statusCode").and_then(Value::as_i64) else {
        bail!("not a 2xx proxy response: {body}");
    };
    let Some(expected) = expected else {
        return Ok(format!("statusCode {code}"));
    };
    let frame = answer
        .get("body")
        .and_then(Value::as_str)
        .and_then(|frame| serde_json::from_str::<Value>(frame).ok());
    let field = |name: &str| {
        frame
            .as_ref()
            .and_then(|frame| frame.get(name))
            .and_then(Value::as_str)
    };
    match expected.code {
        None if field("type") == Some(expected.kind) => {
            Ok(format!("statusCode {code}, {}", expected.kind))
        }
        None => bail!("not a {} frame: {body}", expected.kind),
        Some(wanted) if field("type") == Some(expected.kind) && field("code") == Some(wanted) => {
            Ok(format!("statusCode {code}, {} {wanted}", expected.kind))
        }
        Some(wanted) => bail!("not an {} frame saying {wanted}: {body}", expected.kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str) -> &'static Function {
        named(name).unwrap_or_else(|problem| panic!("{problem:#}"))
    }

    fn judge(name: &str, body: &str) -> anyhow::Result<String> {
        let exercise = function(name)
            .exercise
            .unwrap_or_else(|| panic!("{name} is not exercised"));
        exercise.judge(body)
    }

    #[test]
    fn functions_json_sizes_every_function_the_bench_knows() {
        let known = known().unwrap_or_else(|problem| panic!("{problem:#}"));
        let names: Vec<&str> = known
            .iter()
            .map(|function| function.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "authorizer",
                "connect",
                "default",
                "disconnect",
                "fanout",
                "history",
                "moderate",
                "reconcile",
                "sendmessage",
                "stream-processor"
            ]
        );
        let sendmessage = function("sendmessage");
        assert_eq!(
            (sendmessage.memory_mb, sendmessage.timeout),
            (256, Duration::from_secs(29))
        );
        assert_eq!(
            function("stream-processor").timeout,
            Duration::from_secs(60)
        );
        assert_eq!(function("authorizer").memory_mb, 128);
        assert_eq!(function("reconcile").exercise, None);
        assert_eq!(function("fanout").exercise, None);
    }

    #[test]
    fn every_function_is_a_binary_of_the_workspace() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let stream_processor =
            std::fs::read_to_string(format!("{root}/stream-processor/Cargo.toml"))
                .unwrap_or_else(|problem| panic!("stream-processor/Cargo.toml: {problem}"));
        for function in known().unwrap_or_default() {
            let name = &function.name;
            let handler = std::path::Path::new(root).join(format!("handlers/src/bin/{name}.rs"));
            assert!(
                handler.is_file() || stream_processor.contains(&format!("name = \"{name}\"")),
                "no binary named {name}"
            );
        }
    }

    #[test]
    fn the_default_is_every_exercised_function() {
        assert_eq!(
            exercised(),
            "authorizer,connect,default,disconnect,history,moderate,sendmessage,stream-processor"
        );
    }

    #[test]
    fn serverless_keys_are_binary_names_in_kebab_case() {
        assert_eq!(binary_name("streamProcessor"), "stream-processor");
        assert_eq!(binary_name("sendmessage"), "sendmessage");
    }

    #[test]
    fn sizes_outside_lambdas_limits_are_refused() {
        let refused = parse(r#"{"connect":{"memorySize":64,"timeout":10}}"#);
        assert!(refused.is_err_and(|problem| problem.to_string().contains("128 to 10240 MB")),);
        assert!(parse(r#"{"connect":{"memorySize":128}}"#).is_err());
    }

    #[test]
    fn answers_are_judged_per_function() {
        assert!(judge("connect", r#"{"statusCode":200}"#).is_ok());
        assert!(judge("connect", r#"{"statusCode":500}"#).is_err());
        assert!(judge("connect", "not json").is_err());
        let pong = r#"{"statusCode":200,"body":"{\"type\":\"pong\",\"message\":\"pong\"}"}"#;
        assert!(judge("default", pong).is_ok());
        assert!(judge("history", pong).is_err());
        assert!(judge("default", r#"{"statusCode":200}"#).is_err());
        let allow = r#"{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":["execute-api:Invoke"],"Effect":"Allow","Resource":["arn"]}]}}"#;
        assert!(judge("authorizer", allow).is_ok());
        assert!(judge("authorizer", &allow.replace("Allow", "Deny")).is_err());
        assert!(judge("stream-processor", r#"{"batchItemFailures":[]}"#).is_ok());
        assert!(
            judge(
                "stream-processor",
                r#"{"batchItemFailures":[{"itemIdentifier":"1"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn moderate_must_say_the_message_was_not_found() {
        let not_found = r#"{"statusCode":200,"body":"{\"type\":\"error\",\"code\":\"not_found\",\"message\":\"No message has that id\"}"}"#;
        assert_eq!(
            judge("moderate", not_found).ok().as_deref(),
            Some("statusCode 200, error not_found")
        );
        let forbidden = not_found.replace("not_found", "forbidden");
        assert!(judge("moderate", &forbidden).is_err());
        assert!(judge("moderate", r#"{"statusCode":200}"#).is_err());
    }
}
