//! Why the stack could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {address} for {what}: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded DynamoDB: {0}")]
    Dynamo(String),
    #[error("creating the tables failed: {0}")]
    Tables(#[from] handlers::error::StoreError),
    #[error("the SessionHistory table has no stream")]
    NoStream,
    #[error("stream: {0}")]
    Stream(String),
}
