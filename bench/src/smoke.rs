//! `chat-bench smoke`: the one command a user runs against a stage they have
//! just deployed (`--url wss://…/prod`), and CI against a local stack the
//! bench starts itself (no `--url`): three clients go through what people
//! do, and each check prints ✔ or ✘ with what went wrong.
//!
//! The checks: three clients join a room of their own (with sign-in, on the
//! token); their connection ids look like API Gateway's; the room hears who
//! joined; one message reaches everyone once; it is in the room's history;
//! a heartbeat is answered; bad frames are refused with a clear error; a
//! client that vanishes (TCP reset) is announced as gone and the next
//! message still goes to everyone else, with no error for its sender; with
//! the Management API's URL, `GetConnection` answers a live connection and
//! 410 for the vanished one; with sign-in, a handshake without a token is
//! refused.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::client_async_tls;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::client::Socket;
use crate::server::{Binaries, Server, Target};

#[derive(Debug, Clone)]
pub struct Plan {
    /// The stage's WebSocket URL; `None`: a local stack the bench starts.
    pub url: Option<String>,
    /// A sign-in token, when the stage has sign-in on.
    pub token: Option<String>,
    /// The stage's Management API endpoint (`https://…/prod`), for the 410
    /// check; the local stack's is known.
    pub management_url: Option<String>,
    /// How long one expected frame may take.
    pub patience: Duration,
}

/// One check's outcome.
#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub url: String,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }
}

pub async fn run(plan: &Plan, binaries: &Binaries) -> anyhow::Result<Outcome> {
    // The rustls of `wss://`; the same provider as the functions' HTTPS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let local = match &plan.url {
        Some(_) => None,
        None => Some(
            Server::start(
                &Target::Chat {
                    fanout_concurrency: None,
                    management_delay_ms: 0,
                },
                binaries,
            )
            .await?,
        ),
    };
    let url = match (&plan.url, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => bail!("no stage to test"),
    };
    let management_url = plan.management_url.clone().or_else(|| {
        local
            .as_ref()
            .and_then(|server| server.management_endpoint.clone())
    });
    eprintln!("smoke test of {url}");
    let mut smoke = Smoke {
        plan: plan.clone(),
        url: url.clone(),
        checks: Vec::new(),
    };
    smoke.all(management_url.as_deref()).await;
    if let Some(server) = local {
        if server.errors() > 0 {
            smoke.record(
                "the local stack logged no ERROR line",
                Err(anyhow!("{} ERROR lines", server.errors())),
            );
        }
        server.stop().await;
    }
    Ok(Outcome {
        url,
        checks: smoke.checks,
    })
}

struct Smoke {
    plan: Plan,
    url: String,
    checks: Vec<Check>,
}

/// A joined client.
struct Member {
    socket: Socket,
    id: String,
    /// Frames read while looking for another.
    backlog: Vec<Value>,
}

impl Smoke {
    fn record(&mut self, name: &'static str, result: anyhow::Result<String>) -> bool {
        let (passed, detail) = match result {
            Ok(detail) => (true, detail),
            Err(problem) => (false, format!("{problem:#}")),
        };
        eprintln!(
            "  {} {name}{}",
            if passed { "✔" } else { "✘" },
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        self.checks.push(Check {
            name,
            passed,
            detail,
        });
        passed
    }

    /// The room URL for one member.
    fn member_url(&self, room: &str, name: &str, with_token: bool) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let mut url = format!("{}{separator}room={room}&name={name}", self.url);
        if let (true, Some(token)) = (with_token, &self.plan.token) {
            url.push_str("&token=");
            url.push_str(token);
        }
        url
    }

    async fn all(&mut self, management_url: Option<&str>) {
        let room = format!("smoke-{}", std::process::id());
        let mut members = Vec::new();
        for name in ["Ada", "Bob", "Cy"] {
            match self.join(&room, name, name == "Cy").await {
                Ok(member) => members.push(member),
                Err(problem) => {
                    self.record("three clients join a room of their own", Err(problem));
                    return;
                }
            }
        }
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        self.record(
            "three clients join a room of their own",
            Ok(format!("#{room}: {}", ids.join(", "))),
        );
        self.record(
            "their connection ids look like API Gateway's",
            looks_like_ids(&ids),
        );
        let patience = self.plan.patience;
        let [ada, bob, cy] = &mut members[..] else {
            return;
        };
        let joined = told_joined(ada, &[&bob.id, &cy.id], patience).await;
        self.record("the room hears who joined", joined);
        let delivered = one_message_reaches_everyone(ada, bob, cy, patience).await;
        let message_id = delivered.as_ref().ok().cloned();
        self.record(
            "one message reaches everyone, once",
            delivered.map(|id| format!("message_id {id}")),
        );
        if let Some(message_id) = message_id {
            let history = in_history(bob, &message_id, patience).await;
            self.record("it is in the room's history", history);
        }
        self.record("a heartbeat is answered", heartbeat(ada, patience).await);
        self.record(
            "bad frames are refused with a clear error",
            refusals(ada, patience).await,
        );
        let vanished = cy.id.clone();
        let Some(cy) = members.pop() else { return };
        // A phone losing its network: no close frame, a TCP reset.
        drop(cy.socket);
        let [ada, bob] = &mut members[..] else { return };
        let left = vanish(ada, bob, &vanished, patience).await;
        self.record(
            "a client that vanishes is announced as gone, and messages still reach the others",
            left,
        );
        match management_url {
            Some(endpoint) => {
                let answers = management(endpoint, &ada.id, &vanished).await;
                self.record(
                    "GetConnection answers a live connection, and 410 for a gone one",
                    answers,
                );
            }
            None => eprintln!(
                "  - GetConnection not checked: give --management-url (the ManagementApiEndpoint output)"
            ),
        }
        if self.plan.token.is_some() {
            let refused = self.refused_without_token(&room).await;
            self.record("a handshake without a token is refused", refused);
        }
        for mut member in members {
            let _ = member.socket.close(None).await;
        }
    }

    /// Connects (over a TCP connection of our own, reset on drop: SO_LINGER
    /// 0 for `reset`) and waits for the `welcome`.
    async fn join(&self, room: &str, name: &str, reset: bool) -> anyhow::Result<Member> {
        let url = self.member_url(room, name, true);
        let mut socket = connect(&url, reset)
            .await
            .with_context(|| format!("{name} could not connect"))?;
        let mut backlog = Vec::new();
        let welcome = next_of_type(&mut socket, &mut backlog, "welcome", self.plan.patience)
            .await
            .context(name.to_owned())?;
        let id = welcome["connection_id"]
            .as_str()
            .with_context(|| format!("{name}'s welcome names no connection: {welcome}"))?
            .to_owned();
        Ok(Member {
            socket,
            id,
            backlog,
        })
    }

    async fn refused_without_token(&self, room: &str) -> anyhow::Result<String> {
        let url = self.member_url(room, "NoToken", false);
        match connect(&url, false).await {
            Ok(_) => bail!("a handshake without a token was accepted"),
            Err(problem) => {
                let problem = format!("{problem:#}");
                if problem.starts_with("HTTP 401") || problem.starts_with("HTTP 403") {
                    Ok(problem)
                } else {
                    bail!("refused, but not as sign-in does: {problem}")
                }
            }
        }
    }
}

/// A WebSocket handshake (TLS for `wss://`); the refusal's status and body
/// when the server refused it.
async fn connect(url: &str, reset: bool) -> anyhow::Result<Socket> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().context("not a URL")?;
    let host = uri.host().context("the URL names no host")?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let tcp = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("cannot reach {host}:{port}"))?;
    if reset {
        // Deprecated because a non-zero linger blocks on drop; zero resets.
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO))?;
    }
    match client_async_tls(url, tcp).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(anyhow!(crate::client::refusal(&response))),
        Err(error) => Err(error.into()),
    }
}

/// The next JSON frame of `frame_type`, from the backlog or the socket;
/// others are kept in the backlog.
async fn next_of_type(
    socket: &mut Socket,
    backlog: &mut Vec<Value>,
    frame_type: &str,
    patience: Duration,
) -> anyhow::Result<Value> {
    next_matching(socket, backlog, patience, |frame| {
        frame["type"] == frame_type
    })
    .await
    .with_context(|| format!("no {frame_type} frame"))
}

async fn next_matching(
    socket: &mut Socket,
    backlog: &mut Vec<Value>,
    patience: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    if let Some(index) = backlog.iter().position(&wanted) {
        return Ok(backlog.remove(index));
    }
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow!("nothing within {patience:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str())
                    .map_err(|_| anyhow!("a frame that is not JSON: {text}"))?;
                if wanted(&value) {
                    return Ok(value);
                }
                backlog.push(value);
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => bail!("the connection closed"),
        }
    }
}

impl Member {
    async fn send(&mut self, frame: Value) -> anyhow::Result<()> {
        self.send_text(frame.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        Ok(self.socket.send(Message::Text(text.into())).await?)
    }

    async fn next_of_type(
        &mut self,
        frame_type: &str,
        patience: Duration,
    ) -> anyhow::Result<Value> {
        next_of_type(&mut self.socket, &mut self.backlog, frame_type, patience).await
    }
}

/// API Gateway's ids: 16 characters of base64, often ending in `=`.
fn looks_like_ids(ids: &[String]) -> anyhow::Result<String> {
    let odd: Vec<&String> = ids
        .iter()
        .filter(|id| {
            id.len() != 16
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        })
        .collect();
    if odd.is_empty() {
        Ok(String::new())
    } else {
        bail!("not 16 characters of base64: {odd:?}")
    }
}

/// Whether `member` is told (by a `presence` frame, or the `welcome` list
/// it got) that each of `others` joined.
async fn told_joined(
    member: &mut Member,
    others: &[&String],
    patience: Duration,
) -> anyhow::Result<String> {
    let mut missing: Vec<&String> = others.to_vec();
    let deadline = Instant::now() + patience;
    while !missing.is_empty() && Instant::now() < deadline {
        let presence = member
            .next_of_type(
                "presence",
                deadline.saturating_duration_since(Instant::now()),
            )
            .await?;
        for joined in presence["joined"].as_array().into_iter().flatten() {
            missing.retain(|id| joined["connection_id"] != id.as_str());
        }
    }
    if missing.is_empty() {
        Ok(String::new())
    } else {
        bail!("never told that {missing:?} joined")
    }
}

/// Ada says something; everyone (Ada included) receives it once. Its id.
async fn one_message_reaches_everyone(
    ada: &mut Member,
    bob: &mut Member,
    cy: &mut Member,
    patience: Duration,
) -> anyhow::Result<String> {
    let text = format!("smoke test {}", std::process::id());
    ada.send(json!({ "action": "sendmessage", "message": text }))
        .await?;
    let mut ids = Vec::new();
    for member in [ada, bob, cy] {
        let frame = next_matching(&mut member.socket, &mut member.backlog, patience, |frame| {
            frame["type"] == "message" && frame["text"] == text.as_str()
        })
        .await
        .context("not received")?;
        ids.push(frame["message_id"].as_str().unwrap_or_default().to_owned());
        // Once: no second copy within a moment.
        let again = next_matching(
            &mut member.socket,
            &mut member.backlog,
            Duration::from_millis(300),
            |frame| frame["type"] == "message" && frame["text"] == text.as_str(),
        )
        .await;
        if again.is_ok() {
            bail!("received twice");
        }
    }
    if ids.iter().all(|id| !id.is_empty() && *id == ids[0]) {
        Ok(ids[0].clone())
    } else {
        bail!("different message ids: {ids:?}")
    }
}

async fn in_history(
    member: &mut Member,
    message_id: &str,
    patience: Duration,
) -> anyhow::Result<String> {
    member.send(json!({ "action": "history" })).await?;
    let page = member.next_of_type("history", patience).await?;
    let found = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|message| message["message_id"] == message_id);
    if found {
        Ok(String::new())
    } else {
        bail!("not in the first page: {page}")
    }
}

async fn heartbeat(member: &mut Member, patience: Duration) -> anyhow::Result<String> {
    member.send(json!({ "action": "ping" })).await?;
    let pong = member.next_of_type("pong", patience).await?;
    if pong["message"] == "pong" {
        Ok(String::new())
    } else {
        bail!("an odd pong: {pong}")
    }
}

async fn refusals(member: &mut Member, patience: Duration) -> anyhow::Result<String> {
    let mut codes = Vec::new();
    for (frame, expected) in [
        ("not json".to_owned(), "invalid_json"),
        (json!({ "action": "shout" }).to_string(), "unknown_action"),
    ] {
        member.send_text(frame).await?;
        let error = member.next_of_type("error", patience).await?;
        if error["code"] != expected {
            bail!("expected {expected}, got {error}");
        }
        if error["message"].as_str().is_none_or(str::is_empty) {
            bail!("an error without a message: {error}");
        }
        codes.push(expected);
    }
    Ok(codes.join(", "))
}

/// After `gone` vanished: Ada is told it left, and her next message reaches
/// her and Bob with no error for her.
async fn vanish(
    ada: &mut Member,
    bob: &mut Member,
    gone: &str,
    patience: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + patience * 3;
    loop {
        let left = ada
            .next_of_type(
                "presence",
                deadline.saturating_duration_since(Instant::now()),
            )
            .await
            .context("never told it left")?;
        if left["left"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|departure| departure["connection_id"] == gone)
        {
            break;
        }
    }
    let text = format!("after the reset {}", std::process::id());
    ada.send(json!({ "action": "sendmessage", "message": text }))
        .await?;
    for member in [&mut *ada, &mut *bob] {
        next_matching(&mut member.socket, &mut member.backlog, patience, |frame| {
            frame["type"] == "message" && frame["text"] == text.as_str()
        })
        .await
        .context("the next message was not received")?;
    }
    let error = next_matching(
        &mut ada.socket,
        &mut ada.backlog,
        Duration::from_millis(500),
        |frame| frame["type"] == "error",
    )
    .await;
    match error {
        Ok(error) => bail!("the sender was told: {error}"),
        Err(_) => Ok(String::new()),
    }
}

/// `GetConnection` through the real SDK client, with the credentials of
/// the environment (any, for a local stack).
async fn management(endpoint: &str, live: &str, gone: &str) -> anyhow::Result<String> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let region = sdk
        .region()
        .cloned()
        .or_else(|| region_of(endpoint).map(aws_config::Region::new))
        .unwrap_or_else(|| aws_config::Region::new("us-east-1"));
    let mut config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .region(region);
    if endpoint.starts_with("http://") {
        // A local stack: any credentials (it checks who calls, not how).
        config =
            config.credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "local", "local", None, None, "smoke",
            ));
    }
    let client = aws_sdk_apigatewaymanagement::Client::from_conf(config.build());
    client
        .get_connection()
        .connection_id(live)
        .send()
        .await
        .with_context(|| format!("GetConnection({live}) failed"))?;
    match client.get_connection().connection_id(gone).send().await {
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_gone_exception()) =>
        {
            Ok(format!("{live}: 200, {gone}: 410"))
        }
        Ok(_) => bail!("GetConnection({gone}) says it is still connected"),
        Err(error) => Err(error).with_context(|| format!("GetConnection({gone}) failed")),
    }
}

/// `eu-west-1` in `https://abc.execute-api.eu-west-1.amazonaws.com/prod`.
fn region_of(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    let _api = parts.next()?;
    (parts.next()? == "execute-api").then_some(())?;
    parts.next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_a_management_endpoint() {
        assert_eq!(
            region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/prod"),
            Some("eu-west-1".into())
        );
        assert_eq!(region_of("http://127.0.0.1:8080/dev"), None);
    }

    #[test]
    fn ids_are_told_from_other_strings() {
        assert!(looks_like_ids(&["L0SM9cOFvHcCIhw=".into()]).is_ok());
        assert!(looks_like_ids(&["short".into()]).is_err());
        assert!(looks_like_ids(&["L0SM9cOFvHcCIh!=".into()]).is_err());
    }
}
