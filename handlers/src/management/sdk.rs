//! The Management API through the SDK's own client
//! (`aws-sdk-apigatewaymanagement`), one per process, with [`super::sigv4`]'s
//! day-key signer in place of the SDK's SigV4 signer (its `sigv4` auth
//! scheme, through the client's `push_auth_scheme`): the SDK's
//! serialization, endpoint, retries (standard mode), timeouts and error
//! mapping; our signing, on the credentials the SDK's identity cache keeps.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_apigatewaymanagement as api;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::{
    AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId, Sign,
};
use aws_smithy_runtime_api::client::http::{SharedHttpConnector, http_client_fn};
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;

use super::ManagementEndpoint;
use super::sigv4::{Request, Signer};
use crate::limits::{POST_ATTEMPTS, POST_TIMEOUT};

/// SigV4's auth scheme id: the scheme the client's operations name, whose
/// signer this one replaces.
const SIGV4: AuthSchemeId = AuthSchemeId::new("sigv4");

/// The client: the SDK config's region and credentials, `endpoint`, calls
/// through `connector`, signed by `signer`.
pub(super) fn client(
    sdk: &SdkConfig,
    endpoint: &ManagementEndpoint,
    connector: SharedHttpConnector,
    signer: Arc<Signer>,
) -> api::Client {
    let config = api::config::Builder::from(sdk)
        .endpoint_url(endpoint.as_str())
        .http_client(http_client_fn(move |_, _| connector.clone()))
        .push_auth_scheme(DayKeySigV4 { signer })
        .retry_config(
            aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(POST_ATTEMPTS),
        )
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .operation_timeout(POST_TIMEOUT)
                .build(),
        )
        .build();
    api::Client::from_conf(config)
}

/// The `sigv4` auth scheme, signing with the day key.
#[derive(Debug)]
struct DayKeySigV4 {
    signer: Arc<Signer>,
}

impl AuthScheme for DayKeySigV4 {
    fn scheme_id(&self) -> AuthSchemeId {
        SIGV4
    }

    /// The SDK's own credentials resolver (the SDK config's provider,
    /// behind the client's identity cache).
    fn identity_resolver(
        &self,
        identity_resolvers: &dyn GetIdentityResolver,
    ) -> Option<SharedIdentityResolver> {
        identity_resolvers.identity_resolver(SIGV4)
    }

    fn signer(&self) -> &dyn Sign {
        self
    }
}

impl Sign for DayKeySigV4 {
    fn sign_http_request(
        &self,
        request: &mut HttpRequest,
        identity: &Identity,
        _endpoint_config: AuthSchemeEndpointConfig<'_>,
        runtime_components: &RuntimeComponents,
        _config_bag: &ConfigBag,
    ) -> Result<(), BoxError> {
        let credentials = identity
            .data::<Credentials>()
            .ok_or("the sigv4 identity is not AWS credentials")?;
        let uri: aws_lambda_events::http::Uri = request.uri().parse()?;
        let host = uri.authority().ok_or("the request has no host")?.as_str();
        let body = request
            .body()
            .bytes()
            .ok_or("the Management API's bodies are in memory")?;
        let now = runtime_components
            .time_source()
            .map_or_else(SystemTime::now, |clock| clock.now());
        let signature = self.signer.sign_with(
            credentials,
            Request {
                method: request.method(),
                host,
                path: uri.path(),
                body,
            },
            now,
        )?;
        let headers = request.headers_mut();
        headers.insert("x-amz-date", signature.amz_date);
        headers.insert("authorization", signature.authorization);
        if let Some(token) = signature.security_token {
            headers.insert("x-amz-security-token", token);
        }
        Ok(())
    }
}
