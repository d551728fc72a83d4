//! The `$connect` REQUEST authorizer over events as API Gateway sends them:
//! Allow exactly the route it was asked about, with the user in the context;
//! 401 without a token; a Deny (403) for a token that does not verify.

#![allow(clippy::expect_used)] // a failed step fails the test

use handlers::auth::{AuthSettings, KeySource, Verifier};
use handlers::routes::UNAUTHORIZED;
use serde_json::{Value, json};
use testkit::fixtures::authorizer_event;
use testkit::tokens::{SECRET, claims, hs256};

const CONNECT_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/$connect";

fn verifier() -> Verifier {
    Verifier::new(AuthSettings::new(KeySource::Secret(
        SECRET.as_bytes().to_vec(),
    )))
    .expect("valid settings")
}

fn policy(response: &aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse) -> Value {
    serde_json::to_value(response).expect("serializes")
}

#[tokio::test]
async fn a_good_token_allows_this_connect_only_and_names_the_user() {
    let token = hs256(&claims("user-42", Some("Ada")), SECRET);
    for event in [
        authorizer_event(Some(&token), None),
        authorizer_event(None, Some(&format!("Bearer {token}"))),
    ] {
        let response = handlers::authorize(&verifier(), event)
            .await
            .expect("answered");
        let json = policy(&response);
        assert_eq!(json["principalId"], "user-42");
        assert_eq!(
            json["policyDocument"]["Statement"],
            json!([{"Action": ["execute-api:Invoke"], "Effect": "Allow", "Resource": [CONNECT_ARN]}])
        );
        assert_eq!(
            json["context"],
            json!({"user_id": "user-42", "name": "Ada"})
        );
    }
}

#[tokio::test]
async fn no_token_is_unauthorized_and_a_bad_one_is_denied() {
    let missing = handlers::authorize(&verifier(), authorizer_event(None, None)).await;
    let error = missing.expect_err("no token");
    assert_eq!(error.to_string(), UNAUTHORIZED, "API Gateway's 401");

    let bad = hs256(&claims("user-42", None), "another secret");
    let response = handlers::authorize(&verifier(), authorizer_event(Some(&bad), None))
        .await
        .expect("answered");
    let json = policy(&response);
    assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(json["context"], Value::Null, "nothing about the user");
    assert!(!json.to_string().contains(&bad), "the token is not echoed");
}
