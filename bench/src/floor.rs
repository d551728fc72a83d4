//! The floor: a bare in-memory WebSocket broadcast server. Every text frame
//! a client sends goes to every connected client, the sender included, with
//! nothing stored and nothing in between. What chat-local costs on top of
//! this is what the product adds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Serves until the process ends. Prints `WebSocket URL ws://…` when ready,
/// as chat-local's banner does, so the bench starts both the same way.
pub async fn serve(listen: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("WebSocket URL   ws://{}", listener.local_addr()?);
    let peers = Peers::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(peer(stream, next_id, Arc::clone(&peers)));
    }
}

async fn peer(stream: TcpStream, id: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    // The same per-socket buffers as chat-local's, so memory compares too.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let Ok(socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = socket.split();
    let (outbox, mut queued) = mpsc::unbounded_channel();
    lock(&peers).insert(id, outbox);
    let writer = tokio::spawn(async move {
        while let Some(frame) = queued.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = source.next().await {
        if let Message::Text(_) = frame {
            for outbox in lock(&peers).values() {
                let _ = outbox.send(frame.clone());
            }
        }
    }
    lock(&peers).remove(&id);
    writer.abort();
}

fn lock(peers: &Peers) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Message>>> {
    peers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
