//! Another web site cannot use the chat running on this machine through its
//! visitors' browsers: not by opening WebSockets from its page, not through
//! a host name that resolves to 127.0.0.1 (DNS rebinding), not by posting to
//! the Management API; and the page cannot be framed. Requests here are
//! what a browser would send, over real HTTP.

#![allow(clippy::expect_used)] // a failed step fails the test

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use testkit::stack::{Client, TestStack, start_stack, unique_prefix};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Sends `request` to `address`; the status, the headers and the body.
async fn send(
    address: std::net::SocketAddr,
    request: Request<Full<Bytes>>,
) -> (u16, hyper::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a body").to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get(path: &str, host: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::default())
        .expect("a request")
}

/// The status of a refused upgrade, or `None` when accepted.
async fn upgrade(url: &str, headers: &[(&'static str, &str)]) -> Option<u16> {
    let mut request = url.into_client_request().expect("a request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(error) => panic!("{url}: {error}"),
    }
}

#[tokio::test]
async fn only_the_chats_own_page_may_open_websockets_unless_an_origin_is_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let allowed = "http://127.0.0.1:5173";
    let t = start_stack(dir.path(), &unique_prefix(), &["--allowed-origin", allowed]).await;
    let url = t.stack.websocket_url();
    let own = format!("http://{}", t.stack.address);
    assert_eq!(upgrade(&url, &[]).await, None, "no Origin: wscat, SDKs");
    assert_eq!(
        upgrade(&url, &[("origin", &own)]).await,
        None,
        "its own page"
    );
    assert_eq!(upgrade(&url, &[("origin", allowed)]).await, None);
    assert_eq!(
        upgrade(&url, &[("origin", "https://evil.example")]).await,
        Some(403)
    );
    assert_eq!(
        upgrade(&url, &[("origin", "null")]).await,
        Some(403),
        "file:// or a sandboxed frame"
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_host_name_that_is_not_this_chats_reaches_nothing() {
    let t = TestStack::start(&[]).await;
    let address = t.stack.address;
    let port = address.port();
    // A name an attacker's DNS resolves to 127.0.0.1.
    let rebound = format!("evil.example:{port}");
    for path in ["/", "/config.json", "/metrics", "/app.js"] {
        let (status, _, body) = send(address, get(path, &rebound)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("--allowed-host"), "{body}");
    }
    let ws = format!("ws://{address}/{}", t.stack.stage);
    assert_eq!(upgrade(&ws, &[("host", &rebound)]).await, Some(403));
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _, _) = send(address, get("/config.json", &host)).await;
        assert_eq!(status, 200, "{host}");
    }
    t.stack.shutdown().await;
}

#[tokio::test]
async fn the_management_api_refuses_what_a_browser_sends_and_serves_curl() {
    let t = TestStack::start(&[]).await;
    let mut victim = Client::connect(&t.stack.websocket_url()).await;
    let address = t.stack.address;
    let path = format!(
        "/{}/@connections/{}",
        t.stack.stage,
        victim
            .id
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let forged = r#"{"type":"message","message":"forged"}"#;
    // A page elsewhere posting with text/plain: no preflight needed.
    let cross_site = Request::post(&path)
        .header("host", address.to_string())
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(forged)))
        .expect("a request");
    let (status, headers, _) = send(address, cross_site).await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-amzn-errortype"], "ForbiddenException");
    // What curl -d sends.
    let curl = Request::post(&path)
        .header("host", address.to_string())
        .header("user-agent", "curl/8.5.0")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(
            r#"{"type":"note","message":"from curl"}"#,
        )))
        .expect("a request");
    assert_eq!(send(address, curl).await.0, 200);
    let delivered = victim.next_of_type("note").await;
    assert_eq!(delivered["message"], "from curl");
    let forged_frames = victim
        .drain_of_type("message", std::time::Duration::from_millis(300))
        .await;
    assert!(
        forged_frames
            .iter()
            .all(|frame| frame["message"] != "forged"),
        "{forged_frames:?}"
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn the_page_cannot_be_framed_or_sniffed_and_sends_no_referrer() {
    let t = TestStack::start(&[]).await;
    let host = t.stack.address.to_string();
    for path in ["/", "/dashboard", "/app.js", "/config.json"] {
        let (status, headers, _) = send(t.stack.address, get(path, &host)).await;
        assert_eq!(status, 200, "{path}");
        let policy = headers["content-security-policy"].to_str().expect("text");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    t.stack.shutdown().await;
}
