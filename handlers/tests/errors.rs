//! A failed AWS call is reported with what an operator needs: the service,
//! the operation, the error code and message, the request id, the HTTP status
//! or, when nothing answered, the I/O error. Clients never see any of it.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use handlers::Store;
use handlers::management::Delivery;
use handlers::records::Message;
use handlers::time::Timestamp;
use testkit::failing::{FailingEndpoint, REQUEST_ID};
use testkit::{FakeManagementApi, Harness};

fn message() -> Message {
    Message::new(
        uuid::Uuid::new_v4().to_string(),
        "alice".into(),
        handlers::Room::lobby(),
        "hi".into(),
        Timestamp::now(),
    )
}

/// A store whose DynamoDB is `endpoint`, retrying fast.
fn store_at(endpoint: &str) -> Store {
    let sdk = chat_local::aws::local_sdk_config();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    Store::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        handlers::Tables::default(),
    )
}

#[tokio::test]
async fn throttling_is_named_with_its_code_message_and_request_id() {
    let fake = FailingEndpoint::start(
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded",
    )
    .await;
    let error = store_at(&fake.endpoint)
        .put_message(&message())
        .await
        .expect_err("throttled");
    let text = error.to_string();
    assert!(text.starts_with("DynamoDB PutItem failed: "), "{text}");
    assert!(
        text.contains("ProvisionedThroughputExceededException"),
        "{text}"
    );
    assert!(
        text.contains("provisioned throughput for the table was exceeded"),
        "{text}"
    );
    assert!(
        !text.contains("DispatchFailure {"),
        "no Debug dumps: {text}"
    );
    assert_eq!(error.code(), Some("ProvisionedThroughputExceededException"));
    assert_eq!(error.request_id(), Some(REQUEST_ID));
    assert_eq!(error.aws().and_then(|aws| aws.status), Some(400));
    assert_eq!(fake.requests(), 2, "throttling is retried by the SDK");
}

#[tokio::test]
async fn a_server_error_is_named_with_its_status() {
    let fake = FailingEndpoint::start(500, "InternalServerError", "Internal server error").await;
    let error = store_at(&fake.endpoint)
        .put_message(&message())
        .await
        .expect_err("a 500");
    assert_eq!(error.code(), Some("InternalServerError"));
    assert_eq!(error.aws().and_then(|aws| aws.status), Some(500));
    assert!(
        error.to_string().contains("Internal server error"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_names_the_io_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let error = store_at(&format!("http://127.0.0.1:{port}"))
        .put_message(&message())
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(text.contains("dispatch failure"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert_eq!(error.code(), None);
    assert_eq!(error.aws().and_then(|aws| aws.status), None);
}

#[tokio::test]
async fn a_failed_condition_is_named_as_such() {
    let h = Harness::start().await;
    let message = message();
    h.chat.store.put_message(&message).await.expect("stored");
    let error = h
        .chat
        .store
        .put_message(&message)
        .await
        .expect_err("a message id is never reused");
    assert_eq!(error.code(), Some("ConditionalCheckFailedException"));
    assert!(
        error
            .to_string()
            .contains("ConditionalCheckFailedException"),
        "{error}"
    );
}

#[tokio::test]
async fn a_management_api_403_is_named_and_not_retried() {
    let api = FakeManagementApi::start().await;
    api.mark_failing("alice");
    let management = handlers::Management::new(
        &chat_local::aws::local_sdk_config(),
        &api.endpoint.parse().expect("an endpoint"),
    );
    let Delivery::Failed(error) = management
        .post("alice", bytes::Bytes::from_static(b"{}"))
        .await
    else {
        panic!("a 403 is a failure");
    };
    assert_eq!(error.code.as_deref(), Some("ForbiddenException"));
    assert_eq!(error.status, Some(403));
    let text = error.to_string();
    assert!(
        text.starts_with("Management API PostToConnection failed: "),
        "{text}"
    );
    assert!(text.contains("Forbidden"), "{text}");
    assert_eq!(api.attempts("alice"), 1);
}

#[tokio::test]
async fn throttled_and_failing_posts_are_retried_a_bounded_number_of_times() {
    let sdk = chat_local::aws::local_sdk_config();
    for (status, code) in [
        (429, "LimitExceededException"),
        (500, "InternalServerError"),
    ] {
        let fake = FailingEndpoint::start(status, code, "try later").await;
        let management =
            handlers::Management::new(&sdk, &fake.endpoint.parse().expect("an endpoint"));
        let Delivery::Failed(error) = management
            .post("alice", bytes::Bytes::from_static(b"{}"))
            .await
        else {
            panic!("{code} is a failure");
        };
        assert_eq!(error.code.as_deref(), Some(code));
        assert_eq!(
            fake.requests(),
            handlers::limits::POST_ATTEMPTS as usize,
            "{code}"
        );
    }
    // 410 is an answer, not a failure to retry.
    let gone = FakeManagementApi::start().await;
    gone.mark_gone("alice");
    let management = handlers::Management::new(&sdk, &gone.endpoint.parse().expect("an endpoint"));
    assert!(matches!(
        management
            .post("alice", bytes::Bytes::from_static(b"{}"))
            .await,
        Delivery::Gone
    ));
    assert_eq!(gone.attempts("alice"), 1);
}

#[tokio::test]
async fn posts_are_signed_as_the_sdks_signer_signs_them() {
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    let api = FakeManagementApi::start().await;
    let endpoint = api.endpoint.parse().expect("an endpoint");
    let sdk = chat_local::aws::local_sdk_config();
    // Connection ids carry `=`, which the path and the signature encode.
    let signed = handlers::Management::new(&sdk, &endpoint);
    assert!(matches!(
        signed
            .post("L0SM9cOFvHcCIhw=", bytes::Bytes::from_static(b"{}"))
            .await,
        Delivery::Delivered
    ));
    assert_eq!(api.frames_for("L0SM9cOFvHcCIhw=").len(), 1);
    // The fake checks: a wrong secret is refused, and nothing is delivered.
    let wrong = sdk
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local", "wrong", None, None, "test",
        )))
        .build();
    let Delivery::Failed(error) = handlers::Management::new(&wrong, &endpoint)
        .post("bob", bytes::Bytes::from_static(b"{}"))
        .await
    else {
        panic!("a bad signature is refused");
    };
    assert_eq!(error.code.as_deref(), Some("InvalidSignatureException"));
    assert_eq!(error.status, Some(403));
    assert!(api.frames_for("bob").is_empty());
}
