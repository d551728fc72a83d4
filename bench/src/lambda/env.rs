//! The Lambda environment a function process gets: the variables Lambda
//! sets for a `provided.al2023` function (with placeholder credentials),
//! those infra/serverless.yml and infra/auth.js set, and where its AWS
//! services are: chat-local's.

use std::net::SocketAddr;

use anyhow::Context;

use super::functions::Function;
use crate::server::Server;

/// The stage in function names, ARNs and `STAGE`.
const STAGE: &str = "bench";
/// The region in ARNs and `AWS_REGION`.
const REGION: &str = "us-east-1";
/// The HS256 secret the authorizer verifies `mint-token`'s token with.
pub const AUTH_SECRET: &str = "chat-bench-authorizer-secret-32b";

/// Where the functions find their AWS services: chat-local's.
pub struct Env {
    pub management_endpoint: String,
    pub dynamodb_endpoint: String,
}

/// The deployed name, `serverless-chat-<stage>-<function>`.
pub fn function_name(function: &Function) -> String {
    format!("serverless-chat-{STAGE}-{}", function.name)
}

/// `arn:aws:lambda:…:function:<name>`, as the Runtime API announces it.
pub fn function_arn(function: &Function) -> String {
    format!(
        "arn:aws:lambda:{REGION}:123456789012:function:{}",
        function_name(function)
    )
}

impl Env {
    /// The endpoints chat-local's banner announced.
    pub fn of(server: &Server) -> anyhow::Result<Self> {
        Ok(Self {
            management_endpoint: server
                .management_endpoint
                .clone()
                .context("chat-local's banner has no Management API")?,
            dynamodb_endpoint: server
                .dynamodb_endpoint
                .clone()
                .context("chat-local's banner has no DynamoDB endpoint")?,
        })
    }

    /// The variables Lambda sets for a `provided.al2023` function, with
    /// placeholder credentials, and those infra/serverless.yml sets; the one
    /// offline addition is `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn variables(&self, function: &Function, runtime_api: SocketAddr) -> Vec<(String, String)> {
        let name = function_name(function);
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".into(),
            ),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "bench/secret/access/key/placeholder00000".into(),
            ),
            (
                "AWS_SESSION_TOKEN",
                "bench-session-token-placeholder".into(),
            ),
            ("_HANDLER", "bootstrap".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ];
        lambda
            .into_iter()
            .chain(self.deployment())
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// What the deployment sets: infra/serverless.yml's
    /// provider.environment, infra/auth.js's secret, and (offline only)
    /// chat-local's DynamoDB.
    fn deployment(&self) -> [(&'static str, String); 13] {
        [
            ("ACTIVE_CONNECTIONS_TABLE", "ActiveConnections".into()),
            ("SESSION_HISTORY_TABLE", "SessionHistory".into()),
            ("MESSAGE_HISTORY_TABLE", "MessageHistory".into()),
            ("MODERATION_TABLE", "Moderation".into()),
            ("ROOM_ACCESS", "open".into()),
            ("MEMBERS_ONLY_ROOMS", String::new()),
            ("METRICS_NAMESPACE", "ServerlessChat".into()),
            ("STAGE", STAGE.into()),
            ("MANAGEMENT_API_ENDPOINT", self.management_endpoint.clone()),
            ("MESSAGE_RETENTION_DAYS", String::new()),
            ("SESSION_RETENTION_DAYS", String::new()),
            // infra/auth.js's, for the authorizer (HS256).
            ("AUTH_JWT_SECRET", AUTH_SECRET.into()),
            // Offline only: DynamoDB is chat-local's.
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
        ]
    }
}
