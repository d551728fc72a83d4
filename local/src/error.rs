//! Why the stack could not start, said so that the reader knows what to do.

use std::net::SocketAddr;

use thiserror::Error;

use crate::dynamo::EmbeddedError;
use crate::tables::TablesError;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(
        "cannot listen on {address} for {what}: {source}; is another chat-local running? Choose another address with {flag}"
    )]
    Bind {
        what: &'static str,
        flag: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded DynamoDB: {0}")]
    Embedded(#[from] EmbeddedError),
    #[error("{problem} at {endpoint}: {source}{hint}")]
    Dynamo {
        problem: &'static str,
        endpoint: String,
        #[source]
        source: Box<TablesError>,
        /// What to try, for an endpoint the user chose.
        hint: &'static str,
    },
    #[error(
        "the {table} table has no stream; create it with a NEW_AND_OLD_IMAGES stream or let chat-local create it"
    )]
    NoStream { table: String },
    #[error("stream: {0}")]
    Stream(String),
    #[error("sign-in: cannot read the key file: {0}; check --auth-jwt-public-key or --auth-jwks")]
    AuthKeyFile(#[source] std::io::Error),
    #[error("sign-in: {0}")]
    Auth(#[from] handlers::auth::AuthConfigError),
    #[error("the gateway's Management API endpoint: {0}; check --stage")]
    ManagementEndpoint(#[from] handlers::error::ConfigError),
    #[error(
        "--listen and --dynamodb-listen are both {0}: the gateway and the embedded DynamoDB need an address each; give one of them another port"
    )]
    SameAddress(SocketAddr),
}

impl StartError {
    /// Setting up the tables at `endpoint` failed.
    pub fn dynamo(endpoint: &str, external: bool, source: TablesError) -> Self {
        let unreachable = source
            .aws()
            .is_some_and(|error| error.status.is_none() && error.code.is_none());
        let problem = if unreachable {
            "cannot reach DynamoDB"
        } else {
            "cannot set up the tables in DynamoDB"
        };
        let hint = match (external, unreachable) {
            (true, true) => {
                "; is DynamoDB Local running there? Or drop --dynamodb-endpoint to use the embedded one"
            }
            (true, false) => "; or drop --dynamodb-endpoint to use the embedded one",
            (false, _) => "",
        };
        Self::Dynamo {
            problem,
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
            hint,
        }
    }
}
