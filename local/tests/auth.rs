//! Sign-in through the local stack: the same verifier as the Lambda
//! authorizer, in-process. A bad token is a refused upgrade (401 without a
//! token, 403 with a bad one), a good one puts its user on the session and
//! its name on the frames.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::io::BufReader;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use testkit::item::{connection_row, scan, string};
use testkit::stack::{Client, TestStack};
use testkit::tokens::{self, SECRET, claims, hs256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn stack_with(flags: &[&str]) -> TestStack {
    TestStack::start(flags).await
}

/// A stack signing in with the JWKS at `url`, and a deployed JWKS file
/// holding key-1 as its fallback (in the returned directory).
async fn stack_with_jwks_url(url: &str) -> (TestStack, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fallback = dir.path().join("jwks.json");
    std::fs::write(&fallback, tokens::jwks("key-1")).expect("writes");
    let flags = [
        "--auth-jwks",
        &fallback.display().to_string(),
        "--auth-jwks-url",
        url,
    ];
    (stack_with(&flags).await, dir)
}

/// The HTTP status of a refused upgrade, or `None` when it was accepted.
async fn refusal(url: &str, bearer: Option<&str>) -> Option<u16> {
    let mut request = url.into_client_request().expect("a request");
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().expect("a header value");
        request.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(error) => panic!("{url}: {error}"),
    }
}

fn with_token(url: &str, token: &str) -> String {
    format!("{url}?token={token}")
}

#[tokio::test]
async fn a_good_token_signs_in_and_its_name_wins_over_the_query() {
    let t = stack_with(&["--auth-jwt-secret", SECRET]).await;
    let url = t.stack.websocket_url();
    let token = hs256(&claims("user-42", Some("Ada Lovelace")), SECRET);
    let mut ada = Client::connect(&format!("{url}?token={token}&name=Mallory&room=books")).await;
    let mut bob = Client::connect(&format!(
        "{url}?room=books&token={}",
        hs256(&claims("user-7", None), SECRET)
    ))
    .await;
    ada.say("hello").await;
    let message = bob.next_of_type("message").await;
    assert_eq!(
        message["name"], "Ada Lovelace",
        "the token's name, not ?name="
    );
    assert!(
        message.get("user_id").is_none(),
        "user ids stay on the server"
    );

    let tables = &t.stack.tables;
    // No row of any table holds the token, or any piece of it.
    let signature = token.rsplit('.').next().expect("a signature");
    for table in [
        &tables.active_connections,
        &tables.session_history,
        &tables.message_history,
    ] {
        for row in scan(&t.dynamodb, table).await {
            assert!(!format!("{row:?}").contains(signature), "{table}: {row:?}");
        }
    }
    let session = connection_row(&t.dynamodb, &tables.session_history, &ada.id)
        .await
        .expect("the session");
    assert_eq!(string(&session, "user_id"), "user-42");
    assert_eq!(string(&session, "name"), "Ada Lovelace");
    let stored = scan(&t.dynamodb, &tables.message_history).await;
    assert_eq!(string(&stored[0], "user_id"), "user-42");
    // No name claim: shown by connection id, still signed in.
    let bob_row = connection_row(&t.dynamodb, &tables.active_connections, &bob.id)
        .await
        .expect("bob's row");
    assert_eq!(string(&bob_row, "user_id"), "user-7");
    assert!(!bob_row.contains_key("name"));

    // A header is checked when it comes with ?token= (API Gateway's identity
    // source); alone it is refused unread, as on AWS.
    assert_eq!(refusal(&with_token(&url, "x"), Some(&token)).await, None);
    assert_eq!(refusal(&url, Some(&token)).await, Some(401));
    t.stack.shutdown().await;
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_and_leaves_nothing() {
    let t = stack_with(&[
        "--auth-jwt-secret",
        SECRET,
        "--auth-jwt-issuer",
        "https://issuer.test",
        "--auth-jwt-audience",
        "chat",
    ])
    .await;
    let url = t.stack.websocket_url();
    let good = || {
        let mut claims = claims("user-1", Some("Ada"));
        claims["iss"] = json!("https://issuer.test");
        claims["aud"] = json!("chat");
        claims
    };
    let with = |field: &str, value: Value| {
        let mut claims = good();
        claims[field] = value;
        claims
    };
    let without = |field: &str| {
        let mut claims = good();
        claims.as_object_mut().expect("an object").remove(field);
        claims
    };
    let now = tokens::now();
    assert_eq!(
        refusal(&with_token(&url, &hs256(&good(), SECRET)), None).await,
        None
    );
    // Within the clock skew allowance (30 s): still good.
    assert_eq!(
        refusal(
            &with_token(&url, &hs256(&with("exp", json!(now - 10)), SECRET)),
            None
        )
        .await,
        None
    );
    let cases = [
        ("expired", hs256(&with("exp", json!(now - 120)), SECRET)),
        (
            "not yet valid",
            hs256(&with("nbf", json!(now + 300)), SECRET),
        ),
        ("other secret", hs256(&good(), "another secret entirely")),
        (
            "tampered",
            tokens::tampered(&hs256(&good(), SECRET), &with("sub", json!("admin"))),
        ),
        ("HS384", tokens::hs384(&good(), SECRET)),
        ("alg none", tokens::unsigned(&good())),
        ("RS256 to an HS256 verifier", tokens::rs256(&good(), None)),
        (
            "wrong audience",
            hs256(&with("aud", json!("other")), SECRET),
        ),
        (
            "wrong issuer",
            hs256(&with("iss", json!("https://evil.test")), SECRET),
        ),
        ("no exp", hs256(&without("exp"), SECRET)),
        ("no sub", hs256(&without("sub"), SECRET)),
        ("malformed", "abc".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
        ("10 KB", "a".repeat(10 * 1024)),
    ];
    for (what, token) in &cases {
        assert_eq!(
            refusal(&with_token(&url, token), None).await,
            Some(403),
            "{what}"
        );
        assert_eq!(
            refusal(&with_token(&url, "placeholder"), Some(token)).await,
            Some(403),
            "{what} (header, checked before the query's)"
        );
    }
    assert_eq!(refusal(&url, None).await, Some(401), "no token at all");
    let good_token = hs256(&good(), SECRET);
    assert_eq!(
        refusal(&url, Some(&good_token)).await,
        Some(401),
        "a header without ?token= fails API Gateway's identity source"
    );
    // Only the two good connections opened sessions; none of the refused did.
    let tables = &t.stack.tables;
    testkit::eventually("the good ones closed", || async {
        (scan(&t.dynamodb, &tables.active_connections)
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    assert_eq!(scan(&t.dynamodb, &tables.session_history).await.len(), 2);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn public_keys_and_jwks_verify_rs256_and_es256_and_nothing_else() {
    let rsa = tokens::key_path("rsa-public.pem");
    let t = stack_with(&["--auth-jwt-public-key", &rsa]).await;
    let url = t.stack.websocket_url();
    let good = claims("user-1", None);
    assert_eq!(
        refusal(&with_token(&url, &tokens::rs256(&good, None)), None).await,
        None
    );
    assert_eq!(
        refusal(&with_token(&url, &tokens::es256(&good, None)), None).await,
        Some(403)
    );
    // The RSA public key used as an HMAC secret: the algorithm-confusion forgery.
    let pem = std::fs::read_to_string(&rsa).expect("the key");
    assert_eq!(
        refusal(&with_token(&url, &hs256(&good, &pem)), None).await,
        Some(403)
    );
    t.stack.shutdown().await;

    let ec = tokens::key_path("ec-public.pem");
    let t = stack_with(&["--auth-jwt-public-key", &ec]).await;
    let url = t.stack.websocket_url();
    assert_eq!(
        refusal(&with_token(&url, &tokens::es256(&good, None)), None).await,
        None
    );
    assert_eq!(
        refusal(&with_token(&url, &tokens::rs256(&good, None)), None).await,
        Some(403)
    );
    t.stack.shutdown().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, tokens::jwks("key-1")).expect("writes");
    let t = stack_with(&["--auth-jwks", &jwks.display().to_string()]).await;
    let url = t.stack.websocket_url();
    let token = |kid| tokens::rs256(&good, kid);
    assert_eq!(
        refusal(&with_token(&url, &token(Some("key-1"))), None).await,
        None
    );
    assert_eq!(
        refusal(&with_token(&url, &token(Some("key-2"))), None).await,
        Some(403)
    );
    assert_eq!(
        refusal(&with_token(&url, &token(None)), None).await,
        Some(403)
    );
    t.stack.shutdown().await;
}

/// The chat-local binary, run as a user would, logging at debug level: no
/// line it writes holds a token, good or bad.
#[test]
fn tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-local"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dynamodb-listen",
            "127.0.0.1:0",
        ])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--auth-jwt-secret", SECRET])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-local starts");
    // Both pipes are drained all along, so a chatty log never blocks it.
    let stderr = child.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let url = testkit::stack::banner_websocket_url(&mut child);
    let good = hs256(&claims("user-1", Some("Ada")), SECRET);
    let bad = hs256(&claims("user-1", Some("Ada")), "wrong");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let session = runtime.block_on(async {
        tokio::time::timeout(testkit::PATIENCE * 3, async {
            let mut client = Client::connect(&with_token(&url, &good)).await;
            client.say("hi").await;
            client.next_of_type("message").await;
            assert_eq!(refusal(&with_token(&url, &bad), None).await, Some(403));
            assert_eq!(refusal(&with_token(&url, "x"), Some(&bad)).await, Some(403));
        })
        .await
    });
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    session.expect("the session ends in time");
    let logs = logs.join().expect("the log reader");
    assert!(
        logs.contains("refused a connection"),
        "the refusals are logged: {logs}"
    );
    for token in [&good, &bad] {
        let signature = token.rsplit('.').next().expect("a signature");
        assert!(!logs.contains(signature), "a token in the logs:\n{logs}");
    }
}

/// An identity provider's JWKS URL, served here: it publishes `document`
/// (which the test changes to rotate the keys) and counts the fetches.
struct IdentityProvider {
    url: String,
    document: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl IdentityProvider {
    async fn start(document: String) -> Self {
        use std::sync::atomic::Ordering;
        let document = std::sync::Arc::new(std::sync::Mutex::new(document));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (document.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let served = served.clone();
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    served.lock().expect("the document").clone()
                }
            }),
        );
        let (address, server) = testkit::serve_locally(app, "the JWKS server").await;
        Self {
            url: format!("http://{address}/.well-known/jwks.json"),
            document,
            fetches,
            server,
        }
    }

    fn rotate_to(&self, document: String) {
        *self.document.lock().expect("the document") = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn keys_rotated_at_the_jwks_url_are_fetched_when_a_token_names_one() {
    let provider = IdentityProvider::start(tokens::jwks("key-1")).await;
    // The deployed document, the fallback, knows key-1 only.
    let (t, _dir) = stack_with_jwks_url(&provider.url).await;
    let url = t.stack.websocket_url();
    assert_eq!(provider.fetches(), 1, "fetched at start");
    let good = claims("user-1", None);
    assert_eq!(
        refusal(
            &with_token(&url, &tokens::rs256(&good, Some("key-1"))),
            None
        )
        .await,
        None
    );

    // The provider rotates to a new key: the first token signed with it
    // makes the stack fetch the keys again, and it is let in.
    provider.rotate_to(tokens::ec_jwks("key-2"));
    assert_eq!(
        refusal(
            &with_token(&url, &tokens::es256(&good, Some("key-2"))),
            None
        )
        .await,
        None
    );
    assert_eq!(provider.fetches(), 2);
    // The old key is gone with the rotation.
    assert_eq!(
        refusal(
            &with_token(&url, &tokens::rs256(&good, Some("key-1"))),
            None
        )
        .await,
        Some(403)
    );

    // Made-up kids cannot make every handshake ask the provider: one fetch
    // a minute at most.
    for n in 0..5 {
        let made_up = tokens::es256(&good, Some(&format!("made-up-{n}")));
        assert_eq!(refusal(&with_token(&url, &made_up), None).await, Some(403));
    }
    assert_eq!(provider.fetches(), 2, "within a minute of the last fetch");
    t.stack.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_jwks_url_falls_back_on_the_deployed_document() {
    let provider = IdentityProvider::start(tokens::jwks("key-1")).await;
    let unreachable = provider.url.clone();
    drop(provider);
    let (t, _dir) = stack_with_jwks_url(&unreachable).await;
    let url = t.stack.websocket_url();
    let good = claims("user-1", None);
    assert_eq!(
        refusal(
            &with_token(&url, &tokens::rs256(&good, Some("key-1"))),
            None
        )
        .await,
        None,
        "the fallback's key still signs people in"
    );
    assert_eq!(
        refusal(
            &with_token(&url, &tokens::rs256(&good, Some("key-9"))),
            None
        )
        .await,
        Some(403)
    );
    t.stack.shutdown().await;
}

#[test]
fn a_short_hs256_secret_stops_the_stack_naming_its_length() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-local"))
        .args(["--in-memory", "--listen", "127.0.0.1:0"])
        .args(["--dynamodb-listen", "127.0.0.1:0", "--auth-jwt-secret", "a"])
        .env_remove("CHAT_DYNAMODB_ENDPOINT")
        .output()
        .expect("chat-local runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the HS256 secret is 1 bytes; it must be at least 32"),
        "{stderr}"
    );
    assert!(stderr.contains("openssl rand -base64 32"), "{stderr}");
}

#[tokio::test]
async fn a_token_valid_for_longer_than_the_maximum_is_refused() {
    let t = stack_with(&[
        "--auth-jwt-secret",
        SECRET,
        "--auth-max-token-lifetime-secs",
        "3600",
    ])
    .await;
    let url = t.stack.websocket_url();
    let now = tokens::now();
    let within = json!({ "sub": "u", "iat": now, "exp": now + 3600 });
    let for_ever = json!({ "sub": "u", "iat": now, "exp": 1_000_000_000_000_i64 });
    let no_iat = json!({ "sub": "u", "exp": now + 7200 });
    assert_eq!(
        refusal(&with_token(&url, &hs256(&within, SECRET)), None).await,
        None
    );
    assert_eq!(
        refusal(&with_token(&url, &hs256(&for_ever, SECRET)), None).await,
        Some(403),
        "valid until the year 33658"
    );
    assert_eq!(
        refusal(&with_token(&url, &hs256(&no_iat, SECRET)), None).await,
        Some(403),
        "without iat, counted from now"
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_name_claim_that_is_not_a_display_name_signs_in_without_a_name() {
    let t = stack_with(&["--auth-jwt-secret", SECRET]).await;
    let url = t.stack.websocket_url();
    for bad in [json!("x".repeat(100)), json!("\u{202e}evil"), json!(42)] {
        let mut claims = claims("user-7", None);
        claims["name"] = bad.clone();
        let client = Client::connect(&with_token(&url, &hs256(&claims, SECRET))).await;
        assert_eq!(client.welcome["name"], Value::Null, "{bad}");
    }
    t.stack.shutdown().await;
}
