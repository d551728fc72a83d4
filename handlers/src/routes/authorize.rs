use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Value, json};
use tracing::{info, instrument};

use crate::auth::{Denial, Identity, Verifier, token_of};
use crate::error::BoxError;

/// What API Gateway hands a REQUEST authorizer.
pub type AuthorizerEvent = ApiGatewayCustomAuthorizerRequestTypeRequest;

/// The error message API Gateway turns into 401 Unauthorized.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// The `$connect` authorizer: a token that verifies is allowed to invoke
/// exactly the route it was presented for (`methodArn`, this API's
/// `$connect`), with the user id and name in the authorizer context that API
/// Gateway passes to every route of the connection. No token: 401; a token
/// that does not verify: a Deny policy, 403. The reason goes to the log, the
/// token nowhere.
#[instrument(name = "authorizer", skip_all)]
pub async fn authorize(
    verifier: &Verifier,
    request: AuthorizerEvent,
) -> Result<ApiGatewayCustomAuthorizerResponse, BoxError> {
    let resource = request.method_arn.clone().unwrap_or_default();
    let Some(token) = token_of(&request.headers, &request.query_string_parameters) else {
        Denial::Missing.record();
        return Err(UNAUTHORIZED.into());
    };
    Ok(match verifier.verify_fresh(token).await {
        Ok(identity) => {
            info!(user_id = %identity.user_id, "allowed a connection");
            policy(IamPolicyEffect::Allow, resource, Some(&identity))
        }
        Err(reason) => {
            reason.record();
            policy(IamPolicyEffect::Deny, resource, None)
        }
    })
}

/// The authorizer context: what the routes read back from
/// `requestContext.authorizer`.
pub fn context_of(identity: &Identity) -> Value {
    let mut context = json!({ "user_id": identity.user_id });
    if let Some(name) = &identity.name {
        context["name"] = json!(name.as_str());
    }
    if let Value::Object(fields) = &mut context {
        identity.grants.to_context(fields);
    }
    context
}

fn policy(
    effect: IamPolicyEffect,
    resource: String,
    identity: Option<&Identity>,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".to_owned());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(
        identity
            .map(|identity| identity.user_id.clone())
            .unwrap_or_else(|| "anonymous".to_owned()),
    );
    response.policy_document = document;
    response.context = identity.map(context_of).unwrap_or(Value::Null);
    response
}
