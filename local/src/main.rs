//! `chat-local`: the whole chat on this machine. See `--help`.

/// mimalloc, not the system allocator: with 10,000 connections it leaves
/// less behind after a fan-out (234-240 MB against 267-320 MB) and spends
/// less CPU a message (docs/performance.md, "10,000 clients").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chat_local::cli::run().await
}
