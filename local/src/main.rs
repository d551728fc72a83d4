//! `chat-local`: the whole chat on this machine. See `--help`.

use std::process::ExitCode;

use chat_local::{Args, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    chat_local::telemetry::init_logging();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("chat-local: {problem}");
            return ExitCode::from(2);
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
         \n  Metrics         {page}metrics\
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
    wait_for_stop_signal().await;
    eprintln!("chat-local: closing connections and draining the stream...");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
