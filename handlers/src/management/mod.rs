//! The API Gateway Management API adapter, at the endpoint the deployment
//! configures (`MANAGEMENT_API_ENDPOINT`): posts frames to connections,
//! asks whether one is still there, and closes one.
//!
//! `PostToConnection` runs once per recipient of every message, so it takes
//! a fast path of ours: one request signed by [`sigv4`] (a day key, on
//! RustCrypto's `Hmac<Sha256>`) and sent over the SDK's HTTP connector. The
//! retry loop, its backoff and the error mapping of that path are ours, not
//! the SDK's, written to behave as the SDK's standard mode does for this
//! API: 429, 5xx and broken connections are tried again at most
//! [`POST_ATTEMPTS`] times within [`POST_TIMEOUT`], with full jitter and a
//! process-wide retry budget ([`RetryBudget`], the SDKs' retry quota);
//! errors are read from `x-amzn-ErrorType` and the body's `__type`, with
//! `x-amzn-RequestId`. The SDK's client for the same post costs several
//! times the instructions (docs/performance.md, "Management API").
//!
//! `GetConnection` (the repair) and `DeleteConnection` (moderators) go
//! through the SDK's own client ([`sdk`]), one per process, with the same
//! signer as its SigV4 auth scheme: there the SDK's serialization, retries,
//! timeouts and error mapping run.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use percent_encoding::utf8_percent_encode;

mod sdk;
mod sigv4;

use crate::error::{AwsError, ConfigError, causes};
use crate::limits::{POST_ATTEMPTS, POST_RETRY_BACKOFF, POST_RETRY_MAX_BACKOFF, POST_TIMEOUT};
use crate::retry_budget::{RetryBudget, RetryReason};
use sigv4::{Signer, UNRESERVED};

const SERVICE: &str = "Management API";
/// SigV4's name for API Gateway's execute API, the Management API's signing
/// name.
const SIGNING_NAME: &str = "execute-api";
/// An error answer is a short JSON document; anything longer is cut here.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// What happened to one post.
#[derive(Debug)]
pub enum Delivery {
    Delivered,
    /// 410: the connection is gone (closed, or still in `$connect`).
    Gone,
    Failed(AwsError),
}

/// `MANAGEMENT_API_ENDPOINT`: `https://{api}.execute-api.{region}.{suffix}/{stage}`
/// on AWS, the local stack's `http://127.0.0.1:{port}/{stage}` offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementEndpoint {
    /// As configured, without a trailing `/`.
    url: String,
    /// `host[:port]`, as signed and sent in `host`.
    authority: String,
    /// The stage's path, `/dev`, or empty.
    base_path: String,
}

impl ManagementEndpoint {
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for ManagementEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl FromStr for ManagementEndpoint {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || ConfigError::Invalid {
            name: crate::config::var::MANAGEMENT_API_ENDPOINT,
            value: value.to_owned(),
            expected: "an http:// or https:// URL with a host, an optional stage path and no query"
                .to_owned(),
        };
        let url = value.trim().trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let (authority, base_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let well_formed = !authority.is_empty()
            && !authority.contains('@')
            && !rest.contains(['?', '#'])
            && !rest.contains(char::is_whitespace)
            && base_path.split('/').skip(1).all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && utf8_percent_encode(segment, UNRESERVED).to_string() == segment
            });
        if !well_formed {
            return Err(invalid());
        }
        Ok(Self {
            url: url.to_owned(),
            authority: authority.to_owned(),
            base_path: base_path.to_owned(),
        })
    }
}

/// The Management API of one WebSocket API stage.
#[derive(Clone, Debug)]
pub struct Management {
    /// `PostToConnection`'s signed fast path.
    api: Arc<Api>,
    /// The SDK's client, for everything else.
    sdk: aws_sdk_apigatewaymanagement::Client,
}

#[derive(Debug)]
struct Api {
    endpoint: ManagementEndpoint,
    connector: SharedHttpConnector,
    signer: Arc<Signer>,
    /// Shared by every call of the process.
    retries: RetryBudget,
    /// Posts throttled (429, every try) within the last second.
    throttled: RecentThrottles,
}

/// Posts throttled within a span of a second, counted from the first.
#[derive(Debug, Default)]
struct RecentThrottles(std::sync::Mutex<Option<(std::time::Instant, usize)>>);

impl RecentThrottles {
    const SPAN: std::time::Duration = std::time::Duration::from_secs(1);

    fn note(&self) {
        let now = std::time::Instant::now();
        let mut window = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *window = match *window {
            Some((since, count)) if now.duration_since(since) < Self::SPAN => {
                Some((since, count + 1))
            }
            _ => Some((now, 1)),
        };
    }

    fn count(&self) -> usize {
        match *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some((since, count)) if since.elapsed() < Self::SPAN => count,
            _ => 0,
        }
    }
}

/// The one operation the fast path makes.
const POST_TO_CONNECTION: &str = "PostToConnection";

impl Management {
    /// Over HTTPS (or HTTP), with the credentials and region of `sdk`.
    #[cfg(feature = "aws")]
    pub fn new(sdk: &SdkConfig, endpoint: &ManagementEndpoint) -> Self {
        Self::with_connector(sdk, endpoint, crate::lambda::https_connector())
    }

    /// Calls through `connector` (the local stack's in-process transport, or
    /// plain HTTP in tests).
    pub fn with_connector(
        sdk: &SdkConfig,
        endpoint: &ManagementEndpoint,
        connector: SharedHttpConnector,
    ) -> Self {
        let signer = Arc::new(Signer::new(
            SIGNING_NAME,
            sdk.region().map(|region| region.as_ref().to_owned()),
            sdk.credentials_provider(),
        ));
        Self {
            sdk: sdk::client(sdk, endpoint, connector.clone(), Arc::clone(&signer)),
            api: Arc::new(Api {
                endpoint: endpoint.clone(),
                connector,
                signer,
                retries: RetryBudget::default(),
                throttled: RecentThrottles::default(),
            }),
        }
    }

    /// Whether API Gateway still has the connection (`GetConnection`).
    pub async fn is_connected(&self, connection_id: &str) -> Result<bool, AwsError> {
        match self
            .sdk
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_gone_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(AwsError::new(SERVICE, "GetConnection", &error)),
        }
    }

    /// [`Management::is_connected`], as the repair asks it.
    pub async fn liveness(
        &self,
        connection_id: &str,
    ) -> Result<crate::reconcile::Liveness, AwsError> {
        Ok(match self.is_connected(connection_id).await? {
            true => crate::reconcile::Liveness::Alive,
            false => crate::reconcile::Liveness::Gone,
        })
    }

    /// Closes a connection (`DeleteConnection`): a moderator's removal.
    /// `Gone` when it had closed already.
    pub async fn close(&self, connection_id: &str) -> Delivery {
        match self
            .sdk
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Delivery::Delivered,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_gone_exception()) =>
            {
                Delivery::Gone
            }
            Err(error) => Delivery::Failed(AwsError::new(SERVICE, "DeleteConnection", &error)),
        }
    }

    /// Posts one frame to one connection (`PostToConnection`).
    pub async fn post(&self, connection_id: &str, frame: Bytes) -> Delivery {
        let delivery = self.api.call(connection_id, frame).await;
        if matches!(&delivery, Delivery::Failed(error) if error.status == Some(429)) {
            self.api.throttled.note();
        }
        delivery
    }

    /// Posts this client saw throttled (429, every try) within the last
    /// second: many at once is the account's rate, not one client's full
    /// buffer.
    pub fn throttled_lately(&self) -> usize {
        self.api.throttled.count()
    }
}

enum Attempt {
    Done(Delivery),
    Retry(AwsError, RetryReason),
}

impl Api {
    /// One operation on one connection. Throttling (429), server errors (5xx)
    /// and failed connections are tried again, at most [`POST_ATTEMPTS`]
    /// times within [`POST_TIMEOUT`], after a short jittered backoff, while
    /// the process's retry budget lasts ([`RetryBudget`]): one slow
    /// recipient must not stall a fan-out, nor a throttled API Gateway be
    /// asked again and again. 410 and 403 are answers, never retried.
    async fn call(&self, connection_id: &str, body: Bytes) -> Delivery {
        let path = format!(
            "{}/@connections/{}",
            self.endpoint.base_path,
            utf8_percent_encode(connection_id, UNRESERVED)
        );
        let attempts = async {
            let mut attempt = 1;
            loop {
                match self.attempt(&path, &body).await {
                    Attempt::Done(delivery) => {
                        if !matches!(delivery, Delivery::Failed(_)) {
                            self.retries.succeeded();
                        }
                        return delivery;
                    }
                    Attempt::Retry(error, _) if attempt >= POST_ATTEMPTS => {
                        return Delivery::Failed(error);
                    }
                    Attempt::Retry(mut error, reason) if !self.retries.try_retry(reason) => {
                        error
                            .detail
                            .push_str("; not tried again: the retry budget is spent");
                        return Delivery::Failed(error);
                    }
                    Attempt::Retry(..) => {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            }
        };
        match tokio::time::timeout(POST_TIMEOUT, attempts).await {
            Ok(delivery) => delivery,
            Err(_) => Delivery::Failed(failure(
                ServiceReply::default(),
                format!("no answer within {POST_TIMEOUT:?}"),
            )),
        }
    }

    async fn attempt(&self, path: &str, body: &Bytes) -> Attempt {
        let host = &self.endpoint.authority;
        let method = "POST";
        let signature = match self
            .signer
            .sign(method, host, path, body, SystemTime::now())
            .await
        {
            Ok(signature) => signature,
            Err(error) => {
                return Attempt::Done(Delivery::Failed(failure(
                    ServiceReply::default(),
                    error.to_string(),
                )));
            }
        };
        let mut request = HttpRequest::new(SdkBody::from(body.clone()));
        let built = request
            .set_method(method)
            .map_err(|error| causes(&error))
            .and_then(|()| {
                request
                    .set_uri(format!("{}{path}", self.endpoint.url_origin()))
                    .map_err(|error| causes(&error))
            });
        if let Err(detail) = built {
            return Attempt::Done(Delivery::Failed(failure(ServiceReply::default(), detail)));
        }
        let headers = request.headers_mut();
        headers.insert("host", host.clone());
        headers.insert("content-length", body.len().to_string());
        headers.insert("x-amz-date", signature.amz_date);
        headers.insert("authorization", signature.authorization);
        if let Some(token) = signature.security_token {
            headers.insert("x-amz-security-token", token);
        }
        match self.connector.call(request).await {
            Ok(response) => answer(response).await,
            Err(error) => Attempt::Retry(connection_failure(&error), RetryReason::Unanswered),
        }
    }
}

impl ManagementEndpoint {
    /// `scheme://authority`, what the path is appended to.
    fn url_origin(&self) -> &str {
        &self.url[..self.url.len() - self.base_path.len()]
    }
}

/// Maps the Management API's answer: 2xx delivered, 410 gone, 429 and 5xx
/// worth another try, anything else a failure.
async fn answer(response: HttpResponse) -> Attempt {
    let status = response.status().as_u16();
    match status {
        200..=299 => return Attempt::Done(Delivery::Delivered),
        410 => return Attempt::Done(Delivery::Gone),
        _ => {}
    }
    let header = |name: &str| response.headers().get(name).map(str::to_owned);
    // `x-amzn-ErrorType: GoneException:http://internal.amazon.com/...`
    let header_code = header("x-amzn-errortype")
        .map(|value| value.split(':').next().unwrap_or_default().to_owned());
    let request_id = header("x-amzn-requestid").or_else(|| header("x-amz-request-id"));
    let body = Limited::new(response.into_body(), MAX_ERROR_BODY_BYTES)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let document: Option<ErrorDocument> = serde_json::from_slice(&body).ok();
    let code = header_code
        .filter(|code| !code.is_empty())
        .or_else(|| document.as_ref().and_then(ErrorDocument::code));
    let message = document
        .and_then(|document| document.message.or(document.capital_message))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let detail = match (&code, message.is_empty()) {
        (Some(code), false) => format!("{code} ({status}): {message}"),
        (Some(code), true) => format!("{code} ({status})"),
        (None, false) => format!("HTTP {status}: {message}"),
        (None, true) => format!("HTTP {status}"),
    };
    let error = failure(
        ServiceReply {
            code,
            request_id,
            status: Some(status),
        },
        detail,
    );
    if status == 429 || status >= 500 {
        Attempt::Retry(error, RetryReason::Answered)
    } else {
        Attempt::Done(Delivery::Failed(error))
    }
}

/// The JSON body of an error answer (restJson1).
#[derive(serde::Deserialize)]
struct ErrorDocument {
    message: Option<String>,
    #[serde(rename = "Message")]
    capital_message: Option<String>,
    #[serde(rename = "__type")]
    kind: Option<String>,
    code: Option<String>,
}

impl ErrorDocument {
    /// `aws.protocoltests#GoneException` names `GoneException`.
    fn code(&self) -> Option<String> {
        let code = self.kind.as_deref().or(self.code.as_deref())?;
        let code = code.rsplit('#').next().unwrap_or(code);
        Some(code.split(':').next().unwrap_or(code).to_owned())
    }
}

fn connection_failure(error: &ConnectorError) -> AwsError {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_io() {
        "io error"
    } else {
        "dispatch failure"
    };
    failure(
        ServiceReply::default(),
        format!("{kind}: {}", causes(error)),
    )
}

/// What the service said about a failed call; nothing when it did not
/// answer.
#[derive(Default)]
struct ServiceReply {
    code: Option<String>,
    request_id: Option<String>,
    status: Option<u16>,
}

fn failure(answer: ServiceReply, detail: String) -> AwsError {
    AwsError {
        service: SERVICE,
        operation: POST_TO_CONNECTION,
        code: answer.code,
        request_id: answer.request_id,
        status: answer.status,
        detail,
    }
}

/// Full jitter: a random wait up to the attempt's doubling cap.
fn backoff(attempt: u32) -> Duration {
    let cap = POST_RETRY_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(POST_RETRY_MAX_BACKOFF);
    cap.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_their_stage_and_port() {
        let aws: ManagementEndpoint = "https://abc.execute-api.eu-west-1.amazonaws.com/prod/"
            .parse()
            .expect("valid");
        assert_eq!(aws.authority, "abc.execute-api.eu-west-1.amazonaws.com");
        assert_eq!(aws.base_path, "/prod");
        assert_eq!(
            aws.url_origin(),
            "https://abc.execute-api.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            aws.to_string(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
        );
        let local: ManagementEndpoint = "http://127.0.0.1:8080/dev".parse().expect("valid");
        assert_eq!(local.authority, "127.0.0.1:8080");
        assert_eq!(local.url_origin(), "http://127.0.0.1:8080");
        let bare: ManagementEndpoint = "http://localhost:3001".parse().expect("valid");
        assert_eq!(bare.base_path, "");
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        for bad in [
            "",
            "abc.execute-api.eu-west-1.amazonaws.com/prod",
            "ftp://host/dev",
            "https:///dev",
            "https://host/dev?x=1",
            "https://host/a//b",
            "https://host/../dev",
            "https://user@host/dev",
            "https://host/my stage",
            "https://host/d%20v",
        ] {
            assert!(
                matches!(
                    bad.parse::<ManagementEndpoint>(),
                    Err(ConfigError::Invalid {
                        name: crate::config::var::MANAGEMENT_API_ENDPOINT,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        // 25 ms, doubling per attempt, capped at 400 ms; each wait a random
        // share of its attempt's cap (full jitter).
        for (attempt, cap_ms) in [
            (1, 25),
            (2, 50),
            (3, 100),
            (4, 200),
            (5, 400),
            (6, 400),
            (40, 400),
        ] {
            let cap = Duration::from_millis(cap_ms);
            let mut longest = Duration::ZERO;
            for _ in 0..200 {
                let wait = backoff(attempt);
                assert!(wait <= cap, "attempt {attempt}: {wait:?} over {cap:?}");
                longest = longest.max(wait);
            }
            // 200 draws all below half the cap: one chance in 2^200.
            assert!(
                longest >= cap / 2,
                "attempt {attempt}: {longest:?}, jitter too narrow"
            );
        }
    }

    #[test]
    fn error_documents_name_their_code() {
        let document: ErrorDocument = serde_json::from_str(
            r#"{"__type":"com.amazonaws#LimitExceededException","message":"slow down"}"#,
        )
        .expect("json");
        assert_eq!(document.code().as_deref(), Some("LimitExceededException"));
        let document: ErrorDocument =
            serde_json::from_str(r#"{"Message":"Forbidden"}"#).expect("json");
        assert_eq!(document.code(), None);
        assert_eq!(document.capital_message.as_deref(), Some("Forbidden"));
    }
}
