//! A client that completes the handshake and never reads: posts to it never
//! wait for its socket, everyone else carries on, and it is dropped once a
//! frame has waited `--slow-client-timeout-secs` for it.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_sdk_apigatewaymanagement::primitives::Blob;
use testkit::item::{number, scan, string};
use testkit::stack::{Client, start_stack, unique_prefix};
use tokio_tungstenite::client_async;

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_holds_up_nobody() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = start_stack(
        dir.path(),
        &unique_prefix(),
        // The sender floods on purpose: no message rate limit.
        &[
            "--slow-client-timeout-secs",
            "1",
            "--message-rate-per-second",
            "0",
        ],
    )
    .await;
    let url = t.stack.websocket_url();
    let mut reader = Client::connect(&url).await;

    // The stalled client: a tiny receive buffer, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let stream = socket.connect(t.stack.address).await.expect("connects");
    let (_stalled, _) = client_async(url.as_str(), stream).await.expect("handshake");
    let tables = &t.stack.tables;
    let stalled_id = testkit::eventually("the stalled client is connected", || async {
        scan(&t.dynamodb, &tables.active_connections)
            .await
            .iter()
            .map(|row| string(row, "connection_id"))
            .find(|id| *id != reader.id)
    })
    .await;

    // Far more than the socket buffers hold: every post is answered at once
    // (queued), none waits for the stalled socket.
    let api = t.management_client();
    let big = format!(
        r#"{{"type":"notice","message":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let mut posted = 0;
    for _ in 0..100 {
        let sent = api
            .post_to_connection()
            .connection_id(&stalled_id)
            .data(Blob::new(big.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => posted += 1,
            // Dropped already: the rest are 410 Gone.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                break;
            }
            Err(error) => panic!("post failed: {error:?}"),
        }
    }
    assert!(posted > 0);

    // Everyone else carries on.
    reader.say("still here").await;
    assert_eq!(reader.next_of_type("message").await["text"], "still here");

    let session = t.closed_session(&stalled_id).await;
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert_eq!(
        string(&session, "disconnect_reason"),
        "Client stopped reading"
    );
    let gone = api
        .get_connection()
        .connection_id(&stalled_id)
        .send()
        .await
        .expect_err("dropped");
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_gone_exception())
    );
    t.stack.shutdown().await;
}
