//! The `chat-local` command: flags, start, the banner, Ctrl-C, shutdown.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use crate::{Args, Config};
use clap::Parser;

/// The whole program. Boxed, so the binary only polls a trait object: the
/// stack's future is compiled once, here, instead of again in the binary
/// (32 s of a release build, on the critical path; docs/performance.md).
pub fn run() -> Pin<Box<dyn Future<Output = ExitCode> + Send>> {
    Box::pin(run_stack())
}

async fn run_stack() -> ExitCode {
    let config = Config::from(Args::parse());
    crate::telemetry::init_logging();
    let stop = match stop_signal() {
        Ok(stop) => stop,
        Err(problem) => {
            eprintln!("chat-local: cannot listen for Ctrl-C: {problem}");
            return ExitCode::FAILURE;
        }
    };
    let stack = match crate::start(config).await {
        Ok(stack) => stack,
        Err(problem) => {
            eprintln!("chat-local: {problem}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\nServerless chat, running locally\n\
         \n  Chat page       {page}\
         \n  WebSocket URL   {ws}\
         \n  Management API  {management}/@connections/{{id}}\
         \n  DynamoDB        {dynamo}\
         \n  Metrics         {page}metrics  (dashboard: {page}dashboard)\
         \n\n  Try it:  npx wscat -c {ws}\
         \n           {{\"action\":\"sendmessage\",\"message\":\"Hello, WebSocket!\"}}\
         \n  Tables:  aws dynamodb scan --endpoint-url {dynamo} --table-name {messages}\
         \n\nCtrl-C stops it.\n",
        page = stack.page_url(),
        ws = stack.websocket_url(),
        management = stack.management_endpoint(),
        dynamo = stack.dynamodb_endpoint,
        messages = stack.tables.message_history,
    );
    stop.await;
    eprintln!("chat-local: closing connections and draining the stream...");
    let stopped = stack.shutdown().await;
    if stopped != crate::Stopped::default() {
        eprintln!(
            "chat-local: stopped, abandoning {} connections still closing{}{}; the next start closes what they left open",
            stopped.abandoned_connections,
            if stopped.stream_undrained {
                ", the stream's last records"
            } else {
                ""
            },
            if stopped.abandoned_requests {
                ", unfinished HTTP requests"
            } else {
                ""
            },
        );
    }
    ExitCode::SUCCESS
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called, so a signal
/// that arrives while the stack starts is not lost.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
