//! The Management API adapter against a stand-in that checks every
//! request's SigV4 signature as API Gateway does: GetConnection and
//! DeleteConnection through the SDK's client, signed by the day-key signer
//! as its auth scheme.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use handlers::management::Delivery;
use testkit::FakeManagementApi;
use testkit::management::plain_http_management;

#[tokio::test]
async fn get_and_delete_connection_go_through_the_sdk_client_signed_with_the_day_key() {
    let api = FakeManagementApi::start().await;
    let management = plain_http_management(&chat_local::aws::local_sdk_config(), &api.endpoint);

    assert_eq!(management.is_connected("Alive1234567=").await, Ok(true));
    api.mark_gone("Gone12345678=");
    assert_eq!(management.is_connected("Gone12345678=").await, Ok(false));
    // Ids hold characters a path must encode: signed as sent.
    assert_eq!(management.is_connected("a+b/c=").await, Ok(true));

    assert!(matches!(
        management.close("Alive1234567=").await,
        Delivery::Delivered
    ));
    assert_eq!(api.deleted(), ["Alive1234567="]);
    assert!(matches!(
        management.close("Alive1234567=").await,
        Delivery::Gone
    ));
    assert_eq!(management.is_connected("Alive1234567=").await, Ok(false));
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_reported_with_its_code() {
    let api = FakeManagementApi::start().await;
    let sdk = chat_local::aws::local_sdk_config()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "not-the-key",
            None,
            None,
            "test",
        )))
        .build();
    let management = plain_http_management(&sdk, &api.endpoint);
    let error = management
        .is_connected("Alive1234567=")
        .await
        .expect_err("a wrong signature");
    assert_eq!(error.code.as_deref(), Some("InvalidSignatureException"));
    assert_eq!(error.status, Some(403));
    assert_eq!(error.operation, "GetConnection");
    let Delivery::Failed(error) = management.close("Alive1234567=").await else {
        panic!("a wrong signature deletes nothing");
    };
    assert_eq!(error.code.as_deref(), Some("InvalidSignatureException"));
    assert!(api.deleted().is_empty());
}
