//! A long message reaches the client in fragments no longer than
//! `OUTBOUND_FRAGMENT_BYTES`, which make it up again whole; short ones in
//! one frame. Read off the wire by a client that parses frames itself.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_local::OUTBOUND_FRAGMENT_BYTES;
use testkit::stack::TestStack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One frame as the server wrote it (server frames are never masked).
struct RawFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

async fn read_frame(tcp: &mut TcpStream) -> RawFrame {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.expect("a frame header");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await.expect("a length")),
        127 => tcp.read_u64().await.expect("a length"),
        short => u64::from(short),
    };
    let mut payload = vec![0; usize::try_from(len).expect("a length that fits")];
    tcp.read_exact(&mut payload).await.expect("the payload");
    RawFrame {
        fin: head[0] & 0x80 != 0,
        opcode: head[0] & 0x0f,
        payload,
    }
}

/// The next data message: its frames.
async fn read_message(tcp: &mut TcpStream) -> Vec<RawFrame> {
    let mut frames: Vec<RawFrame> = Vec::new();
    loop {
        let frame = read_frame(tcp).await;
        if frame.opcode >= 8 {
            continue; // a control frame, allowed between fragments
        }
        let fin = frame.fin;
        frames.push(frame);
        if fin {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_long_message_arrives_in_fragments_and_a_short_one_in_one_frame() {
    let t = TestStack::start(&[]).await;
    let mut tcp = TcpStream::connect(t.stack.address).await.expect("connects");
    let handshake = format!(
        "GET /{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        t.stack.stage, t.stack.address
    );
    tcp.write_all(handshake.as_bytes()).await.expect("writes");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("the answer"));
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455's accept key: {head}"
    );

    // The welcome: short, one frame.
    let welcome = read_message(&mut tcp).await;
    assert_eq!(welcome.len(), 1);
    assert_eq!(welcome[0].opcode, 1, "text");
    let welcome: serde_json::Value =
        serde_json::from_slice(&welcome[0].payload).expect("a JSON welcome");
    let id = welcome["connection_id"].as_str().expect("an id");

    let api = t.management_client();
    let long = format!(r#"{{"type":"notice","message":"{}"}}"#, "é".repeat(5000));
    api.post_to_connection()
        .connection_id(id)
        .data(Blob::new(long.as_bytes()))
        .send()
        .await
        .expect("posted");
    let frames = read_message(&mut tcp).await;
    assert_eq!(
        frames.len(),
        long.len().div_ceil(OUTBOUND_FRAGMENT_BYTES),
        "{} bytes",
        long.len()
    );
    assert!(
        frames
            .iter()
            .all(|f| f.payload.len() <= OUTBOUND_FRAGMENT_BYTES)
    );
    assert_eq!(frames[0].opcode, 1, "a text message");
    assert!(frames[1..].iter().all(|f| f.opcode == 0), "continuations");
    let whole: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
    assert_eq!(whole, long.as_bytes());
    t.stack.shutdown().await;
}
