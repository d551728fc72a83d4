//! Frames that break RFC 6455 get the close code the RFC asks for, not a
//! bare TCP end, and `$disconnect` records it; nothing is stored.

#![allow(clippy::expect_used)] // a failed step fails the test

use testkit::item::{number, scan};
use testkit::stack::{Client, TestStack};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;

/// One WebSocket frame, written by hand: `first` is FIN, RSV and opcode.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut bytes = vec![first];
    match payload.len() {
        length @ 0..=125 => bytes.push(mask_bit | length as u8),
        length => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(length as u16).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        bytes.extend_from_slice(&key);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        bytes.extend_from_slice(payload);
    }
    bytes
}

#[tokio::test]
async fn protocol_violations_close_with_the_rfcs_codes() {
    let t = TestStack::start(&[]).await;
    let cases = [
        (
            "invalid UTF-8 in a text frame",
            frame(0x81, &[b'h', 0xff, 0xfe], true),
            1007,
        ),
        ("an unmasked client frame", frame(0x81, b"hi", false), 1002),
        ("a reserved opcode", frame(0x83, b"hi", true), 1002),
        ("a reserved bit", frame(0xC1, b"hi", true), 1002),
        (
            "a control frame over 125 bytes",
            frame(0x89, &[0; 200], true),
            1002,
        ),
        ("a fragmented control frame", frame(0x09, b"hi", true), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut client = Client::connect(&t.stack.websocket_url()).await;
        let MaybeTlsStream::Plain(tcp) = client.socket.get_mut() else {
            panic!("a plain TCP stream");
        };
        tcp.write_all(&bytes).await.expect("writes");
        let close = client
            .closed_by_server()
            .await
            .unwrap_or_else(|| panic!("{what}: a close frame, not a bare end"));
        assert_eq!(u16::from(close.code), code, "{what}");
        let session = t.closed_session(&client.id).await;
        assert_eq!(
            number(&session, "disconnect_status_code"),
            code.to_string(),
            "{what}"
        );
    }
    assert!(t.stored_messages().await.is_empty());
    t.stack.shutdown().await;
}

#[tokio::test]
async fn one_address_holds_at_most_the_configured_connections() {
    let t = TestStack::start(&["--max-connections-per-ip", "2"]).await;
    let url = t.stack.websocket_url();
    let mut first = Client::connect(&url).await;
    let _second = Client::connect(&url).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) =
        tokio_tungstenite::connect_async(url.as_str()).await
    else {
        panic!("a third connection is refused over HTTP");
    };
    assert_eq!(response.status(), 429);
    assert_eq!(
        scan(&t.dynamodb, &t.stack.tables.session_history)
            .await
            .len(),
        2,
        "the refused one wrote nothing"
    );
    // A place frees up when one leaves.
    first.socket.close(None).await.expect("closes");
    t.closed_session(&first.id).await;
    testkit::eventually("a place is free", || async {
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    t.stack.shutdown().await;
}
