//! Errors of the handlers crate, and the one way every adapter reports a
//! failed AWS call: with its service, operation, error code, request id and
//! the whole chain of causes, never a bare "service error".

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;
use thiserror::Error;

/// What a function returns when its invocation fails; Lambda reports the
/// message to the caller (`lambda_runtime::Error` is this same type).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A configuration value that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not set: {why}")]
    Missing {
        name: &'static str,
        why: &'static str,
    },
    #[error("{name}={value:?} is not valid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: String,
    },
}

/// A failed AWS SDK call, rendered for an operator.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{service} {operation} failed: {detail}")]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    /// The service's error code (`ConditionalCheckFailedException`,
    /// `ProvisionedThroughputExceededException`, ...), when it answered.
    pub code: Option<String>,
    /// AWS's request id, when the service answered.
    pub request_id: Option<String>,
    /// HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// Every cause, outermost first, e.g. `dispatch failure: io error: client
    /// error (Connect): tcp connect error: Connection refused (os error 111)`.
    pub detail: String,
}

impl AwsError {
    pub fn new<E>(
        service: &'static str,
        operation: &'static str,
        error: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self {
            service,
            operation,
            code: error.code().map(str::to_owned),
            request_id: error.request_id().map(str::to_owned),
            status: error
                .raw_response()
                .map(|response| response.status().as_u16()),
            detail: causes(error),
        }
    }

    /// A failure to build a request (a missing required field): a bug.
    pub fn build(service: &'static str, operation: &'static str, error: &BuildError) -> Self {
        Self {
            service,
            operation,
            code: None,
            request_id: None,
            status: None,
            detail: causes(error),
        }
    }

    /// Whether the service refused the call with this error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// `error` and each of its sources, joined by `: `; a cause whose text its
/// predecessor already shows is left out. The SDK's own Display is only the
/// category ("service error", "dispatch failure"), and its
/// `DisplayErrorContext` appends a Debug dump no operator wants to read.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.is_empty() && !previous.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        previous = line;
        source = cause.source();
    }
    text
}

/// A DynamoDB call or record conversion that failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Dynamo(#[from] AwsError),
    #[error("record does not match its table's shape: {0}")]
    Record(#[from] serde_dynamo::Error),
}

impl StoreError {
    /// Maps a failed DynamoDB `operation`: `.map_err(StoreError::call("PutItem"))`.
    pub fn call<E>(operation: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        move |error| Self::Dynamo(AwsError::new("DynamoDB", operation, &error))
    }

    /// Maps a DynamoDB request of `operation` that could not be built.
    pub fn request(operation: &'static str) -> impl FnOnce(BuildError) -> Self {
        move |error| Self::Dynamo(AwsError::build("DynamoDB", operation, &error))
    }

    /// The AWS error behind this one.
    pub fn aws(&self) -> Option<&AwsError> {
        match self {
            Self::Dynamo(error) => Some(error),
            Self::Record(_) => None,
        }
    }

    /// The service's error code, as a log field (`error.code`).
    pub fn code(&self) -> Option<&str> {
        self.aws().and_then(|error| error.code.as_deref())
    }

    /// AWS's request id, as a log field (`error.request_id`).
    pub fn request_id(&self) -> Option<&str> {
        self.aws().and_then(|error| error.request_id.as_deref())
    }
}

/// Why a handler could not do its job. Client mistakes are not errors: they
/// are answered with an `error` frame.
#[derive(Debug, Error)]
pub enum Error {
    #[error("event is missing {0}")]
    MissingField(&'static str),
    #[error("event time {0} ms since the epoch is out of range")]
    TimeOutOfRange(i64),
}
