//! `chat-local`: the whole chat on this machine. See `--help`.

use std::process::ExitCode;

use chat_local::{Args, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from(Args::parse());
    chat_local::telemetry::init_logging();
    let stop = match stop_signal() {
        Ok(stop) => stop,
        Err(problem) => {
            eprintln!("chat-local: cannot listen for Ctrl-C: {problem}");
            return ExitCode::FAILURE;
        }
    };
    let stack = match chat_local::start(config).await {
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
    stack.shutdown().await;
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
