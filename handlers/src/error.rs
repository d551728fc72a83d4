//! Errors of the handlers crate.

use thiserror::Error;

/// A configuration value that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: expected {range}")]
    OutOfRange {
        name: &'static str,
        value: String,
        range: &'static str,
    },
}

/// A DynamoDB call or record conversion that failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {source}")]
    Dynamo {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    #[error("record does not match its table's shape: {0}")]
    Record(#[from] serde_dynamo::Error),
}

impl StoreError {
    pub fn dynamo(operation: &'static str, error: impl Into<aws_sdk_dynamodb::Error>) -> Self {
        Self::Dynamo {
            operation,
            source: Box::new(error.into()),
        }
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Management(#[from] crate::management::ManagementError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}
