//! The API Gateway Management API adapter: posts frames to connections
//! through the real `aws-sdk-apigatewaymanagement` client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use thiserror::Error;

/// A post that hangs must not hold up a whole fan-out.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum ManagementError {
    #[error(
        "no Management API endpoint: set MANAGEMENT_API_ENDPOINT, or the event must carry apiId and stage"
    )]
    NoEndpoint,
    #[error("no AWS region configured to build the Management API endpoint")]
    NoRegion,
    #[error("Management API {operation} failed: {source}")]
    Api {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_apigatewaymanagement::Error>,
    },
}

/// What happened to one post.
#[derive(Debug)]
pub enum Delivery {
    Delivered,
    /// 410: the connection is gone (closed, or still in `$connect`).
    Gone,
    Failed(ManagementError),
}

/// Management API clients, built once and reused across invocations: one for
/// the configured endpoint, or one per endpoint derived from events.
#[derive(Clone, Debug)]
pub struct Management {
    base: aws_sdk_apigatewaymanagement::config::Builder,
    region: Option<String>,
    configured: Option<ConnectionsApi>,
    derived: Arc<Mutex<HashMap<String, ConnectionsApi>>>,
}

impl Management {
    /// `endpoint` is the configured endpoint (local stack, custom domain);
    /// without it the endpoint is derived from each event.
    pub fn new(sdk: &SdkConfig, endpoint: Option<String>) -> Self {
        let base = aws_sdk_apigatewaymanagement::config::Builder::from(sdk).timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(POST_TIMEOUT)
                .build(),
        );
        let configured = endpoint.map(|url| ConnectionsApi::build(&base, url));
        Self {
            base,
            region: sdk.region().map(ToString::to_string),
            configured,
            derived: Arc::default(),
        }
    }

    /// The client for the configured endpoint, if there is one.
    pub fn configured(&self) -> Result<ConnectionsApi, ManagementError> {
        self.configured.clone().ok_or(ManagementError::NoEndpoint)
    }

    /// The client for the API that sent `context`: the configured endpoint,
    /// else `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`, which
    /// also works when clients connect through a custom domain.
    pub fn for_request(
        &self,
        context: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<ConnectionsApi, ManagementError> {
        if let Some(api) = &self.configured {
            return Ok(api.clone());
        }
        let (Some(api_id), Some(stage)) = (context.apiid.as_deref(), context.stage.as_deref())
        else {
            return Err(ManagementError::NoEndpoint);
        };
        let region = self.region.as_deref().ok_or(ManagementError::NoRegion)?;
        let url = format!("https://{api_id}.execute-api.{region}.amazonaws.com/{stage}");
        // A poisoned lock only means another invocation panicked mid-insert;
        // the map itself is still usable.
        let mut derived = self
            .derived
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(derived
            .entry(url.clone())
            .or_insert_with(|| ConnectionsApi::build(&self.base, url))
            .clone())
    }
}

/// One Management API endpoint.
#[derive(Clone, Debug)]
pub struct ConnectionsApi {
    client: Client,
    endpoint: String,
}

impl ConnectionsApi {
    fn build(base: &aws_sdk_apigatewaymanagement::config::Builder, endpoint: String) -> Self {
        let config = base.clone().endpoint_url(&endpoint).build();
        Self {
            client: Client::from_conf(config),
            endpoint,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
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
            Err(error) => Delivery::Failed(ManagementError::Api {
                operation: "PostToConnection",
                source: Box::new(error.into()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(
        api_id: Option<&str>,
        stage: Option<&str>,
    ) -> ApiGatewayWebsocketProxyRequestContext {
        let mut context = ApiGatewayWebsocketProxyRequestContext::default();
        context.apiid = api_id.map(str::to_owned);
        context.stage = stage.map(str::to_owned);
        context.domain_name = Some("chat.example.com".to_owned());
        context
    }

    #[test]
    fn derives_the_execute_api_endpoint_even_behind_a_custom_domain() {
        let management = Management::new(&crate::offline::local_sdk_config(), None);
        let api = management
            .for_request(&context(Some("abcdef1234"), Some("prod")))
            .expect("derived");
        assert_eq!(
            api.endpoint(),
            "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert!(matches!(
            management.for_request(&context(None, Some("prod"))),
            Err(ManagementError::NoEndpoint)
        ));
    }

    #[test]
    fn a_configured_endpoint_wins() {
        let management = Management::new(
            &crate::offline::local_sdk_config(),
            Some("http://127.0.0.1:8080/dev".to_owned()),
        );
        let api = management
            .for_request(&context(Some("abcdef1234"), Some("prod")))
            .expect("configured");
        assert_eq!(api.endpoint(), "http://127.0.0.1:8080/dev");
    }
}
