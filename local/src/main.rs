//! `chat-local`: the whole chat on this machine. See `--help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chat_local::cli::run().await
}
