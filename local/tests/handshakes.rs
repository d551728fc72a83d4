//! Sockets that never finish their handshake cannot take the stack down:
//! silent or trickling ones are closed after the deadline, one address
//! cannot hold more than its share, the longest-waiting make room for a
//! real client, and none of them keeps the stack from stopping.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use testkit::stack::{Client, TestStack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ANOTHER_MACHINE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A socket from `local` to `server` that sends nothing.
async fn silent(server: SocketAddr, local: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("binds the local address");
    socket.connect(server).await.expect("connects")
}

/// What the server sends before it closes `tcp`, or `None` if it is still
/// open after `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut said = Vec::new();
    match tokio::time::timeout(wait, tcp.read_to_end(&mut said)).await {
        Ok(_) => Some(String::from_utf8_lossy(&said).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn silent_and_trickling_sockets_are_closed_after_the_deadline() {
    let t = TestStack::start(&["--handshake-timeout-secs", "1"]).await;
    let server = t.stack.address;
    let started = Instant::now();
    let mut quiet = silent(server, IpAddr::from([127, 0, 0, 1])).await;
    let mut trickle = silent(server, IpAddr::from([127, 0, 0, 1])).await;
    let upgrade = format!(
        "GET /dev HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let trickling = tokio::spawn(async move {
        // A byte every 100 ms: the head would take 20 s.
        for byte in upgrade.bytes() {
            if trickle.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickle
    });
    assert!(
        closed_within(&mut quiet, Duration::from_secs(5))
            .await
            .is_some(),
        "the silent socket is closed"
    );
    let mut trickle = trickling.await.expect("the trickle ends");
    assert!(
        closed_within(&mut trickle, Duration::from_secs(1))
            .await
            .is_some(),
        "the trickling socket is closed"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A real client is served as before.
    Client::connect(&t.stack.websocket_url()).await;
}

#[tokio::test]
async fn one_address_past_its_share_is_refused_while_another_is_served() {
    let t = TestStack::start(&["--max-pending-handshakes-per-ip", "5"]).await;
    let server = t.stack.address;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(silent(server, IpAddr::from([127, 0, 0, 1])).await);
    }
    // The accept loop has counted them once a sixth is refused.
    let mut sixth = silent(server, IpAddr::from([127, 0, 0, 1])).await;
    let said = closed_within(&mut sixth, Duration::from_secs(5))
        .await
        .expect("the sixth is closed at once");
    assert!(said.starts_with("HTTP/1.1 429"), "{said:?}");
    for socket in &mut held {
        assert_eq!(
            closed_within(socket, Duration::from_millis(50)).await,
            None,
            "the first five are still waiting for their heads"
        );
    }
    Client::connect_from(&t.stack.websocket_url(), server, ANOTHER_MACHINE).await;
}

#[tokio::test]
async fn past_the_total_cap_the_longest_waiting_socket_makes_room_for_a_real_client() {
    let t = TestStack::start(&["--max-pending-handshakes", "20"]).await;
    let server = t.stack.address;
    // Twenty silent sockets from twenty addresses: every place taken.
    let mut held = Vec::new();
    for last in 1..=20 {
        held.push(silent(server, IpAddr::from([127, 0, 1, last])).await);
    }
    let mut client = Client::connect_from(&t.stack.websocket_url(), server, ANOTHER_MACHINE).await;
    client.say("served").await;
    client.next_of_type_or_error("message").await;
    let oldest = closed_within(&mut held[0], Duration::from_secs(5)).await;
    assert_eq!(
        oldest.as_deref(),
        Some(""),
        "the oldest was closed, unanswered"
    );
    assert_eq!(
        closed_within(&mut held[19], Duration::from_millis(50)).await,
        None,
        "the newest is still waiting"
    );
}

#[tokio::test]
async fn half_sent_requests_do_not_hold_the_stack_when_it_stops() {
    let t = TestStack::start(&[]).await;
    let server = t.stack.address;
    let mut half_sent = Vec::new();
    for _ in 0..5 {
        let mut tcp = silent(server, IpAddr::from([127, 0, 0, 1])).await;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("writes half a head");
        half_sent.push(tcp);
    }
    let client = Client::connect(&t.stack.websocket_url()).await;
    let started = Instant::now();
    let stopped = t.stack.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!stopped.abandoned_requests, "{stopped:?}");
    assert_eq!(stopped.abandoned_connections, 0, "{stopped:?}");
    for tcp in &mut half_sent {
        assert!(
            closed_within(tcp, Duration::from_secs(1)).await.is_some(),
            "dropped at once"
        );
    }
    drop(client);
}
