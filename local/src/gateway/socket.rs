//! One connection's life after the upgrade: frames in, frames out, limits,
//! and `$disconnect` at the end, whatever the end was.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::close_code;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info};

use handlers::protocol::Route;

use super::connections::{Connection, Outbound};
use super::upgrade::Socket;
use super::{Gateway, now_ms};

/// Frames read from one socket and not yet handled: few, so a client that
/// floods is held back by its own TCP window, and one that leaves leaves
/// little behind (its `$disconnect` runs once these are handled).
const INBOUND_QUEUE_FRAMES: usize = 8;

/// How long a close frame may wait for a client that does not read.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest frame written: a longer message goes out in fragments of
/// this size (RFC 6455 section 5.4; API Gateway fragments at 32 KB, and
/// every client reassembles). tungstenite keeps its write buffer as large
/// as the largest frame it ever wrote, so unfragmented, every connection
/// of a big room would hold a `welcome`'s worth (about 18 KB for 200
/// names) for the rest of its life.
pub const OUTBOUND_FRAGMENT_BYTES: usize = 4 * 1024;

/// How a connection ended.
#[derive(Debug)]
enum Ending {
    /// The client sent a close frame (`code` 1005 when it carried none).
    ByClient { code: u16, reason: String },
    /// We close it, sending this close frame.
    ByServer { code: u16, reason: String },
    /// The socket broke without a close frame.
    Abnormal,
    /// The client stopped reading: dropped without a close frame (one could
    /// not be written either).
    StoppedReading,
}

impl Ending {
    fn server(code: u16, reason: &str) -> Self {
        Self::ByServer {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// A frame read and admitted, waiting for its route: the route, the body
/// and when it was received (epoch ms).
type Queued = (Route, String, i64);
type Sink = futures::stream::SplitSink<Socket, Message>;
type Stream = futures::stream::SplitStream<Socket>;

pub(super) async fn run(
    gateway: Arc<Gateway>,
    connection: Arc<Connection>,
    mut outbox: mpsc::Receiver<Outbound>,
    socket: Socket,
) {
    let id = connection.id.clone();
    info!(connection_id = %id, "connection open");
    let (mut sink, mut stream) = socket.split();

    // Frames are handled one at a time, in order, by a worker, so the loop
    // below keeps delivering posts (including replies to this very frame).
    // The queue is short: while it is full the loop stops reading, so a
    // client that floods waits on its own TCP window, and one that leaves
    // leaves at most this much behind.
    let (inbound, queue) = mpsc::channel::<Queued>(INBOUND_QUEUE_FRAMES);
    let worker = tokio::spawn(route_frames(
        Arc::clone(&gateway),
        Arc::clone(&connection),
        queue,
    ));
    let ending = serve(
        &gateway,
        &connection,
        &mut outbox,
        &mut sink,
        &mut stream,
        &inbound,
    )
    .await;

    // From here on the Management API answers 410 for this connection.
    connection.set_open(false);
    gateway.connections.remove(&id);
    let (code, reason) = close(&mut sink, ending).await;
    // Frames already received are still handled, as on AWS.
    drop(inbound);
    let _ = worker.await;
    info!(connection_id = %id, code, reason = %reason, "connection closed");
    // Boxed, like the routes below: the handlers' SDK futures are large, and
    // inline they would make every idle connection's task as large as them.
    Box::pin(gateway.disconnect(&connection, code, &reason)).await;
}

fn going_away() -> Ending {
    Ending::server(close_code::AWAY, "Going away")
}

/// Delivers posts and reads frames until the connection ends: a stop, its
/// 2-hour limit, its idle timeout, a close from either side, or a broken
/// socket. How it ended.
async fn serve(
    gateway: &Gateway,
    connection: &Connection,
    outbox: &mut mpsc::Receiver<Outbound>,
    sink: &mut Sink,
    stream: &mut Stream,
    inbound: &mpsc::Sender<Queued>,
) -> Ending {
    let max_deadline = Instant::now() + gateway.config.max_connection;
    loop {
        let idle_for =
            Duration::from_millis((now_ms() - connection.last_active_ms()).max(0) as u64);
        let idle_deadline = Instant::now() + gateway.config.idle_timeout.saturating_sub(idle_for);
        tokio::select! {
            () = gateway.closing.cancelled() => return going_away(),
            () = sleep_until(max_deadline) => return going_away(),
            () = sleep_until(idle_deadline) => {
                let idle_ms = now_ms() - connection.last_active_ms();
                if idle_ms >= gateway.config.idle_timeout.as_millis() as i64 {
                    info!(connection_id = %connection.id, "idle timeout");
                    return going_away();
                }
            }
            outbound = outbox.recv() => {
                if let Some(ending) = deliver(gateway, connection, sink, outbound).await {
                    return ending;
                }
            }
            // Room in the queue again: reading resumes.
            permit = inbound.reserve(), if inbound.capacity() == 0 => {
                if permit.is_err() {
                    return Ending::Abnormal;
                }
            }
            frame = stream.next(), if inbound.capacity() > 0 => {
                if let Some(ending) = read(gateway, connection, inbound, frame) {
                    return ending;
                }
            }
        }
    }
}

/// Writes one post (or the Management API's close) to the client; the
/// ending, if that ended the connection.
async fn deliver(
    gateway: &Gateway,
    connection: &Connection,
    sink: &mut Sink,
    outbound: Option<Outbound>,
) -> Option<Ending> {
    match outbound {
        Some(Outbound::Frame(message)) => {
            // Posts never wait for this write (they queue in the outbox); a
            // client that stops reading is dropped, and cannot hold a
            // shutdown.
            let write =
                tokio::time::timeout(gateway.config.slow_client_timeout, send(sink, message));
            let written = tokio::select! {
                written = write => written,
                () = gateway.closing.cancelled() => return Some(going_away()),
            };
            match written {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some(Ending::Abnormal),
                Err(_) => {
                    info!(connection_id = %connection.id, "the client stopped reading; dropping it");
                    Some(Ending::StoppedReading)
                }
            }
        }
        Some(Outbound::Close { code, reason }) => Some(Ending::ByServer { code, reason }),
        None => Some(Ending::Abnormal),
    }
}

/// Takes one frame the client sent: a text frame within the stage's and
/// the address's budgets is queued for its route (over them, answered at
/// once); the ending, if the frame ended the connection.
fn read(
    gateway: &Gateway,
    connection: &Connection,
    inbound: &mpsc::Sender<Queued>,
    frame: Option<Result<Message, WsError>>,
) -> Option<Ending> {
    let now = now_ms();
    match frame {
        Some(Ok(Message::Text(text))) => {
            connection.touch(now);
            let route = Route::select(&text);
            if let Err(answer) = gateway.admit_frame(connection, route) {
                let _ = connection.send(Outbound::Frame(Message::Text(answer.into())));
                return None;
            }
            // The connection's loop is the queue's only sender, and it reads
            // only with room in it.
            inbound
                .try_send((route, text.to_string(), now))
                .err()
                .map(|_| Ending::Abnormal)
        }
        Some(Ok(Message::Binary(_))) => Some(Ending::server(
            close_code::UNSUPPORTED,
            "Binary frames are not supported",
        )),
        // (Reading never yields a raw frame.)
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
            connection.touch(now);
            None
        }
        Some(Ok(Message::Close(frame))) => Some(match frame {
            Some(CloseFrame { code, reason }) => Ending::ByClient {
                code: code.into(),
                reason: reason.to_string(),
            },
            None => Ending::ByClient {
                code: close_code::STATUS,
                reason: String::new(),
            },
        }),
        Some(Err(error)) => {
            debug!(connection_id = %connection.id, %error, "socket error");
            Some(match refusal_of(&error) {
                Some((code, reason)) => Ending::server(code, reason),
                None => Ending::Abnormal,
            })
        }
        None => Some(Ending::Abnormal),
    }
}

/// Ends the socket as `ending` says; the close code and reason
/// `$disconnect` records. A client that does not read cannot hold its
/// close: the close frame gets [`CLOSE_WRITE_TIMEOUT`] to go out, then the
/// socket is dropped.
async fn close(sink: &mut Sink, ending: Ending) -> (u16, String) {
    match ending {
        Ending::ByServer { code, reason } => {
            let frame = CloseFrame {
                code: code.into(),
                reason: reason.clone().into(),
            };
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
            })
            .await;
            (code, reason)
        }
        Ending::ByClient { code, reason } => {
            // The close reply was queued when the close frame was read.
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.close()).await;
            (code, reason)
        }
        Ending::Abnormal => (close_code::ABNORMAL, String::new()),
        Ending::StoppedReading => (close_code::ABNORMAL, "Client stopped reading".to_owned()),
    }
}

async fn route_frames(
    gateway: Arc<Gateway>,
    connection: Arc<Connection>,
    mut queue: mpsc::Receiver<Queued>,
) {
    while let Some((route, body, received_at_ms)) = queue.recv().await {
        if let Some(reply) =
            Box::pin(gateway.route(&connection, route, &body, received_at_ms)).await
        {
            // A full or closed outbox drops the reply, as API Gateway would.
            let _ = connection.send(Outbound::Frame(Message::Text(reply.into())));
        }
    }
}

/// The close code RFC 6455 asks for when tungstenite refuses what the client
/// sent: 1009 over [`handlers::limits::GATEWAY_MAX_FRAME_BYTES`] or
/// [`handlers::limits::GATEWAY_MAX_MESSAGE_BYTES`], 1007 for a text frame that
/// is not UTF-8, 1002 for any other protocol violation (an unmasked frame, a
/// reserved opcode or bit, an oversized control frame). `None`: the socket
/// broke (I/O), and there is no one to tell.
fn refusal_of(error: &WsError) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match error {
        WsError::Capacity(_) => Some((close_code::SIZE, "Message too big")),
        WsError::Utf8(_) => Some((close_code::INVALID, "Text frames must be UTF-8")),
        // The TCP connection ended without a close frame: 1006.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((close_code::PROTOCOL, "Protocol error")),
        _ => None,
    }
}

/// Writes `message`, in fragments if it is longer than
/// [`OUTBOUND_FRAGMENT_BYTES`].
async fn send(sink: &mut Sink, message: Message) -> Result<(), WsError> {
    let (data, kind) = match message {
        Message::Text(text) if text.len() > OUTBOUND_FRAGMENT_BYTES => {
            (Bytes::from(text), Data::Text)
        }
        Message::Binary(data) if data.len() > OUTBOUND_FRAGMENT_BYTES => (data, Data::Binary),
        message => return sink.send(message).await,
    };
    for frame in fragments(data, kind) {
        sink.feed(Message::Frame(frame)).await?;
    }
    sink.flush().await
}

/// `data`'s frames of at most [`OUTBOUND_FRAGMENT_BYTES`]: the first of
/// `kind`, continuations after it, the last final. Slices of one buffer,
/// not copies.
fn fragments(mut data: Bytes, kind: Data) -> impl Iterator<Item = Frame> {
    let mut opcode = OpCode::Data(kind);
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let part = data.split_to(data.len().min(OUTBOUND_FRAGMENT_BYTES));
        let frame = Frame::message(part, opcode, data.is_empty());
        opcode = OpCode::Data(Data::Continue);
        Some(frame)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_goes_out_in_fragments_that_make_it_up_again() {
        let text: String = "ü".repeat(OUTBOUND_FRAGMENT_BYTES + 7);
        let frames: Vec<Frame> = fragments(Bytes::from(text.clone()), Data::Text).collect();
        assert_eq!(frames.len(), 3, "{} bytes", text.len());
        assert!(
            frames
                .iter()
                .all(|f| f.payload().len() <= OUTBOUND_FRAGMENT_BYTES)
        );
        assert_eq!(frames[0].header().opcode, OpCode::Data(Data::Text));
        assert!(
            frames[1..]
                .iter()
                .all(|f| f.header().opcode == OpCode::Data(Data::Continue))
        );
        let finals: Vec<bool> = frames.iter().map(|f| f.header().is_final).collect();
        assert_eq!(finals, [false, false, true]);
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.payload().to_vec()).collect();
        assert_eq!(whole, text.as_bytes());
    }

    #[test]
    fn a_message_of_exactly_one_fragment_is_one_final_frame() {
        let frames: Vec<Frame> =
            fragments(Bytes::from(vec![7; OUTBOUND_FRAGMENT_BYTES]), Data::Binary).collect();
        assert_eq!(frames.len(), 1);
        assert!(frames[0].header().is_final);
        assert_eq!(frames[0].header().opcode, OpCode::Data(Data::Binary));
    }
}
