//! The API Gateway Management API adapter: posts frames to connections
//! through the real `aws-sdk-apigatewaymanagement` client, at the endpoint
//! the deployment configures (`MANAGEMENT_API_ENDPOINT`).

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::error::AwsError;
use crate::limits::{POST_ATTEMPTS, POST_RETRY_BACKOFF, POST_RETRY_MAX_BACKOFF, POST_TIMEOUT};

const SERVICE: &str = "Management API";

/// What happened to one post.
#[derive(Debug)]
pub enum Delivery {
    Delivered,
    /// 410: the connection is gone (closed, or still in `$connect`).
    Gone,
    Failed(AwsError),
}

/// The Management API of one WebSocket API stage.
#[derive(Clone, Debug)]
pub struct Management {
    client: Client,
}

impl Management {
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(POST_TIMEOUT)
                    .build(),
            )
            // Throttling (429) and 5xx are retried a bounded number of times
            // with jittered backoff (410 and 403 never are); the backoff is
            // short because one slow recipient must not stall a fan-out.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(POST_ATTEMPTS)
                    .with_initial_backoff(POST_RETRY_BACKOFF)
                    .with_max_backoff(POST_RETRY_MAX_BACKOFF),
            )
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }

    /// Whether API Gateway still has the connection (`GetConnection`).
    pub async fn is_connected(&self, connection_id: &str) -> Result<bool, AwsError> {
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(AwsError::new(SERVICE, "GetConnection", &error)),
        }
    }

    /// Posts one frame to one connection.
    pub async fn post(&self, connection_id: &str, frame: &[u8]) -> Delivery {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame))
            .send()
            .await;
        match result {
            Ok(_) => Delivery::Delivered,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Delivery::Gone
            }
            Err(error) => Delivery::Failed(AwsError::new(SERVICE, "PostToConnection", &error)),
        }
    }
}
