//! A real HTTP endpoint that answers every request with one AWS error, the
//! way the service would (status, `x-amzn-ErrorType`, `x-amzn-RequestId`,
//! a JSON body with `__type` and `message`), so tests see exactly what the
//! SDK makes of throttling, 5xx and access errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The request id every answer carries.
pub const REQUEST_ID: &str = "TESTREQUEST0000000000000000000000000000000000000000";

pub struct FailingEndpoint {
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FailingEndpoint {
    /// Answers `status` with error `code` (e.g. `ProvisionedThroughputExceededException`).
    pub async fn start(status: u16, code: &'static str, message: &'static str) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let status = StatusCode::from_u16(status).expect("a status");
        let app = axum::Router::new().fallback(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({
                    "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                    "message": message,
                });
                let answer: Response = (
                    status,
                    [
                        ("x-amzn-ErrorType", code),
                        ("x-amzn-RequestId", REQUEST_ID),
                        ("content-type", "application/x-amz-json-1.0"),
                    ],
                    body.to_string(),
                )
                    .into_response();
                answer
            }
        });
        let (address, server) = crate::serve_locally(app, "the failing endpoint").await;
        Self {
            endpoint: format!("http://{address}"),
            requests,
            server,
        }
    }

    /// Requests answered so far (the SDK retries some errors).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FailingEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}
