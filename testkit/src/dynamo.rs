//! A real DynamoDB engine with the chat's tables under names of their own,
//! so tests can share one external engine.

use aws_sdk_dynamodb::Client;
use aws_types::SdkConfig;
use chat_local::EmbeddedDynamo;
use handlers::Tables;

/// The environment variable naming an external DynamoDB endpoint for tests.
pub const EXTERNAL_ENDPOINT_VAR: &str = "CHAT_TEST_DYNAMODB_ENDPOINT";

/// The external endpoint the tests should use, if one is set.
pub fn external_endpoint() -> Option<String> {
    std::env::var(EXTERNAL_ENDPOINT_VAR)
        .ok()
        .filter(|endpoint| !endpoint.is_empty())
}

pub struct TestDynamo {
    pub sdk: SdkConfig,
    pub endpoint: String,
    pub client: Client,
    pub tables: Tables,
    /// Kept to keep the embedded engine serving; dropped with the test.
    embedded: Option<EmbeddedDynamo>,
}

impl TestDynamo {
    /// Starts the embedded engine (or uses the external one) and creates
    /// fresh tables, exactly as the local stack does.
    pub async fn start() -> Self {
        let (endpoint, embedded) = match external_endpoint() {
            Some(endpoint) => (endpoint, None),
            None => {
                let listen = ([127, 0, 0, 1], 0).into();
                let embedded = EmbeddedDynamo::start(None, listen)
                    .await
                    .expect("the embedded DynamoDB starts");
                (embedded.endpoint.clone(), Some(embedded))
            }
        };
        let sdk = chat_local::aws::local_sdk_config();
        let client = chat_local::aws::dynamodb_client(&sdk, &endpoint);
        let tables = Tables::with_prefix(&unique_prefix());
        chat_local::tables::ensure(&client, &tables)
            .await
            .expect("creating the test tables");
        Self {
            sdk,
            endpoint,
            client,
            tables,
            embedded,
        }
    }

    /// Whether this is the embedded engine (not an external one).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }
}

/// A table prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
