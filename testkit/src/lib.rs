//! Test support shared by every crate's tests, so each crate tests through
//! real parts the same way:
//!
//! - [`TestDynamo`]: a real DynamoDB engine with throwaway tables: the
//!   embedded one on 127.0.0.1 port 0, or `CHAT_TEST_DYNAMODB_ENDPOINT`
//!   (DynamoDB Local in CI's second pass);
//! - [`FakeManagementApi`]: a real HTTP endpoint standing in for the
//!   Management API, posted to over real HTTP;
//! - [`fixtures`]: API Gateway and DynamoDB stream events as AWS sends them;
//! - [`Harness`]: a [`handlers::Chat`] wired to both, with the handlers'
//!   routes as calls;
//! - [`stack`]: the whole local stack on port 0 and real WebSocket clients;
//! - [`item`]: reading raw items, to check the data contract's field names
//!   and types;
//! - [`failing`]: an endpoint answering every request with one AWS error;
//! - [`proxy`]: a proxy in front of DynamoDB that fails chosen operations,
//!   holds them unanswered, or refuses connections, on demand;
//! - [`tokens`]: good and bad JWTs for the sign-in tests;
//! - [`runtime_api`]: a Lambda Runtime API stand-in, to run the functions'
//!   real binaries as Lambda does.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support stops the test loudly

pub mod dynamo;
pub mod failing;
pub mod fixtures;
pub mod harness;
pub mod item;
pub mod management;
pub mod proxy;
pub mod runtime_api;
pub mod stack;
pub mod tokens;

pub use dynamo::TestDynamo;
pub use harness::Harness;
pub use management::FakeManagementApi;

use std::time::Duration;

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a test listens for something that must not happen (a frame
/// that should not come): far longer than the local stack takes to deliver
/// one (its stream poll is 50 ms in tests).
pub const QUIET: Duration = Duration::from_millis(400);

/// Serves `app` on 127.0.0.1 at a port of its own, until the returned task
/// is aborted (every stand-in aborts it when dropped); its address.
pub async fn serve_locally(
    app: axum::Router,
    what: &str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("binding {what}: {error}"));
    let address = listener.local_addr().expect("its address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, server)
}

/// Polls `check` until it returns `Some`, or panics after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what} did not happen within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
