//! SDK configuration for endpoints on this machine: a fixed region and
//! placeholder credentials. Local engines accept any, and the real SDK
//! clients never go looking for an AWS account.

use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_types::SdkConfig;

use crate::plain_http::PlainHttp;

/// Region of every local client and of the stream records the poller builds.
pub const LOCAL_REGION: &str = "us-east-1";

/// The longest one DynamoDB Streams request may take before the SDK tries
/// it again (reads are safe to repeat), so a stalled request never stops
/// the stream poller.
pub const STREAMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub fn local_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        // Plain HTTP: every local endpoint is on this machine or network.
        .http_client(PlainHttp)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "chat-local",
        )))
        .build()
}

/// A DynamoDB client for `endpoint`.
pub fn dynamodb_client(sdk: &SdkConfig, endpoint: &str) -> aws_sdk_dynamodb::Client {
    // The deployed functions' timeout (handlers::limits::DYNAMODB_CALL_TIMEOUT):
    // a stalled engine refuses a `$connect` with 500 and answers
    // `sendmessage` with an error instead of leaving them waiting for ever.
    aws_sdk_dynamodb::Client::from_conf(
        handlers::store::dynamodb_config(sdk)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// A Lambda client that reaches the stack's own Lambda API through
/// `connector` (in-process): it invokes the fan-out workers.
pub fn lambda_client(
    sdk: &SdkConfig,
    endpoint: &str,
    connector: aws_smithy_runtime_api::client::http::SharedHttpConnector,
) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .http_client(aws_smithy_runtime_api::client::http::http_client_fn(
                move |_, _| connector.clone(),
            ))
            .build(),
    )
}

/// A DynamoDB Streams client for `endpoint` (the same endpoint as DynamoDB's
/// for both local engines).
pub fn streams_client(sdk: &SdkConfig, endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(STREAMS_ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build(),
    )
}
