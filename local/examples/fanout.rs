//! Measures a chat message's fan-out through the whole local stack: N real
//! WebSocket clients, M messages from one of them, and for each message the
//! time from sending until every client has received it. Not a test: it
//! prints numbers.
//!
//!   cargo run --release -p chat-local --example fanout -- [clients=200] [messages=20] [concurrency=64]
//!
//! Everything listens on 127.0.0.1 and stops when the run ends. Each client
//! costs two file descriptors in this process; raise `ulimit -n` for more
//! than ~500 clients.

use std::time::{Duration, Instant};

use chat_local::{Args, Config};
use clap::Parser;
use futures::{SinkExt, StreamExt, future::join_all};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut numbers = std::env::args().skip(1).map(|arg| arg.parse::<usize>());
    let clients = numbers.next().transpose()?.unwrap_or(200);
    let messages = numbers.next().transpose()?.unwrap_or(20);
    let concurrency = numbers.next().transpose()?.unwrap_or(64);

    let concurrency_flag = concurrency.to_string();
    let argv = [
        "chat-local",
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--dynamodb-listen",
        "127.0.0.1:0",
        "--fanout-concurrency",
        &concurrency_flag,
    ];
    let stack = chat_local::start(Config::from(Args::parse_from(argv))).await?;
    let url = stack.websocket_url();

    let started = Instant::now();
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
        sockets.push(socket);
    }
    let connect_time = started.elapsed();

    let mut latencies = Vec::with_capacity(messages);
    for round in 0..messages {
        let text = format!("round {round}");
        let frame = serde_json::json!({"action": "sendmessage", "message": text}).to_string();
        let sent = Instant::now();
        sockets[0].send(Message::text(frame)).await?;
        let arrivals = join_all(sockets.iter_mut().map(|socket| receive(socket, &text))).await;
        if arrivals.iter().any(|arrived| !arrived) {
            return Err(format!("round {round}: not every client received the message").into());
        }
        latencies.push(sent.elapsed());
    }

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!("clients {clients}, messages {messages}, fan-out concurrency {concurrency}");
    println!(
        "connect: {:.1} ms per client ({:.2} s for all, one after another)",
        connect_time.as_secs_f64() * 1000.0 / clients as f64,
        connect_time.as_secs_f64()
    );
    println!(
        "send -> every client has it: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.9).as_secs_f64() * 1000.0,
        at(1.0).as_secs_f64() * 1000.0
    );

    for mut socket in sockets {
        let _ = socket.close(None).await;
    }
    stack.shutdown().await;
    Ok(())
}

/// Reads frames until the chat message with `text` arrives (true), or gives
/// up after 30 s or on a closed socket (false).
async fn receive(socket: &mut Socket, text: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        let Ok(Some(Ok(Message::Text(frame)))) = next else {
            match next {
                Ok(Some(Ok(_))) => continue,
                _ => return false,
            }
        };
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(frame.as_str()) else {
            continue;
        };
        if frame["type"] == "message" && frame["text"] == text {
            return true;
        }
    }
}
