//! A real HTTP endpoint standing in for the API Gateway Management API, so
//! code under test posts over real HTTP as on AWS. It
//! records every post, answers 410 GoneException for ids marked gone,
//! 403 ForbiddenException for ids marked failing, and 429 or 5xx for the
//! next posts to ids given [`FakeManagementApi::fail_next`], with the
//! `x-amzn-ErrorType` header errors are mapped by. `GET` (GetConnection)
//! and `DELETE` (DeleteConnection) answer as API Gateway does too, gone ids
//! with 410, deletions recorded. Like API Gateway, it refuses a request
//! whose SigV4 signature is not what the SDK's own signer (`aws-sigv4`)
//! computes for the request as received: 403 `InvalidSignatureException`,
//! and nothing is recorded.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What `chat_local::aws::local_sdk_config` signs with.
const ACCESS_KEY_ID: &str = "local";
const SECRET_ACCESS_KEY: &str = "local";
const REGION: &str = chat_local::aws::LOCAL_REGION;

pub struct FakeManagementApi {
    /// The endpoint to configure, stage path included.
    pub endpoint: String,
    state: Arc<Mutex<FakeState>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct FakeState {
    posts: Vec<(String, String)>,
    attempts: HashMap<String, usize>,
    gone: HashSet<String>,
    failing: HashSet<String>,
    /// Status and how many more posts get it, by connection id.
    transient: HashMap<String, (u16, usize)>,
    /// Connections closed with DeleteConnection.
    deleted: Vec<String>,
}

impl FakeManagementApi {
    pub async fn start() -> Self {
        let state = Shared::default();
        let app = axum::Router::new()
            .route(
                "/{stage}/@connections/{id}",
                axum::routing::post(post)
                    .get(get_or_delete)
                    .delete(get_or_delete),
            )
            .with_state(state.clone());
        let (address, server) = crate::serve_locally(app, "the fake Management API").await;
        Self {
            endpoint: format!("http://{address}/dev"),
            state,
            server,
        }
    }

    pub fn mark_gone(&self, connection_id: &str) {
        self.lock().gone.insert(connection_id.to_owned());
    }

    pub fn mark_failing(&self, connection_id: &str) {
        self.lock().failing.insert(connection_id.to_owned());
    }

    /// The next `times` posts to `connection_id` are answered `status`
    /// (429 `LimitExceededException`, 500 `InternalServerError`, other 5xx
    /// `ServiceUnavailableException`); later ones as before.
    pub fn fail_next(&self, connection_id: &str, status: u16, times: usize) {
        self.lock()
            .transient
            .insert(connection_id.to_owned(), (status, times));
    }

    /// Every successful post so far, as (connection id, frame).
    pub fn posts(&self) -> Vec<(String, serde_json::Value)> {
        self.lock()
            .posts
            .iter()
            .map(|(id, body)| {
                (
                    id.clone(),
                    serde_json::from_str(body).expect("frames are JSON"),
                )
            })
            .collect()
    }

    /// The connections closed with DeleteConnection, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// How many posts were made to one connection, answered or not.
    pub fn attempts(&self, connection_id: &str) -> usize {
        self.lock()
            .attempts
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    /// The frames one connection received, in order.
    pub fn frames_for(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.posts()
            .into_iter()
            .filter(|(id, _)| id == connection_id)
            .map(|(_, frame)| frame)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state")
    }
}

impl Drop for FakeManagementApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<FakeState>>;

async fn post(
    State(state): State<Shared>,
    Path((_stage, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = unsigned("POST", &headers, &uri, &body) {
        return refused;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut state = state.lock().expect("fake state");
    *state.attempts.entry(id.clone()).or_default() += 1;
    if let Some((status, left)) = state.transient.get_mut(&id).filter(|(_, n)| *n > 0) {
        *left -= 1;
        let code = match *status {
            429 => "LimitExceededException",
            500 => "InternalServerError",
            _ => "ServiceUnavailableException",
        };
        let status = StatusCode::from_u16(*status).expect("a status");
        return (
            status,
            [("x-amzn-ErrorType", code)],
            r#"{"message":"try again later"}"#,
        )
            .into_response();
    }
    if state.gone.contains(&id) {
        return gone();
    }
    if state.failing.contains(&id) {
        return (
            StatusCode::FORBIDDEN,
            [("x-amzn-ErrorType", "ForbiddenException")],
            r#"{"message":"Forbidden"}"#,
        )
            .into_response();
    }
    state.posts.push((id, body));
    StatusCode::OK.into_response()
}

/// GetConnection (a connection's document) and DeleteConnection
/// (recorded, and gone from then on); 410 for a gone id.
async fn get_or_delete(
    State(state): State<Shared>,
    Path((_stage, id)): Path<(String, String)>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unsigned(method.as_str(), &headers, &uri, b"") {
        return refused;
    }
    let mut state = state.lock().expect("fake state");
    if state.gone.contains(&id) {
        return gone();
    }
    if method == axum::http::Method::DELETE {
        state.gone.insert(id.clone());
        state.deleted.push(id);
        return StatusCode::NO_CONTENT.into_response();
    }
    axum::Json(serde_json::json!({
        "connectedAt": "2026-11-28T00:13:36.123Z",
        "identity": { "sourceIp": "127.0.0.1" },
        "lastActiveAt": "2026-11-28T00:13:40.000Z",
    }))
    .into_response()
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException")],
        r#"{"message":null}"#,
    )
        .into_response()
}

/// API Gateway's 403 for a request whose signature is wrong; `None` when it
/// is right.
fn unsigned(method: &str, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Option<Response> {
    let problem = signature_problem(method, headers, uri, body)?;
    Some(
        (
            StatusCode::FORBIDDEN,
            [("x-amzn-ErrorType", "InvalidSignatureException")],
            serde_json::json!({ "message": problem }).to_string(),
        )
            .into_response(),
    )
}

/// Why the request's `authorization` is not the signature `aws-sigv4`
/// computes for it (`None`: it is).
fn signature_problem(method: &str, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(given), Some(date), Some(host)) = (
        header("authorization"),
        header("x-amz-date"),
        header("host"),
    ) else {
        return Some("the request is not signed".to_owned());
    };
    let Ok(time) = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ") else {
        return Some(format!("x-amz-date {date:?} is not a SigV4 date"));
    };
    let identity = Identity::from(Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        header("x-amz-security-token").map(str::to_owned),
        None,
        "fake-management-api",
    ));
    let params = SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(SystemTime::from(time.and_utc()))
        .settings(SigningSettings::default())
        .build()
        .expect("complete signing parameters");
    let url = format!("http://{host}{}", uri.path());
    let signed = SignableRequest::new(
        method,
        &url,
        [("host", host)].into_iter(),
        SignableBody::Bytes(body),
    )
    .and_then(|request| sign(request, &params.into()));
    let expected = match signed {
        Ok(output) => output
            .into_parts()
            .0
            .headers()
            .find(|(name, _)| *name == "authorization")
            .map(|(_, value)| value.to_owned()),
        Err(error) => return Some(format!("the request cannot be signed: {error}")),
    };
    (expected.as_deref() != Some(given))
        .then(|| format!("signature mismatch: expected {expected:?}, got {given:?}"))
}

/// The chat's Management API adapter for a local `endpoint`, over the local
/// stack's plain HTTP client (the deployed functions' HTTPS client is only in
/// builds with the `aws` feature).
pub fn plain_http_management(sdk: &aws_types::SdkConfig, endpoint: &str) -> handlers::Management {
    let connector = chat_local::plain_http::PlainHttp
        .connector(&aws_smithy_runtime_api::client::http::HttpConnectorSettings::default());
    handlers::Management::with_connector(
        sdk,
        &endpoint.parse().expect("a local endpoint"),
        connector,
    )
}
