//! The chat's route handlers and the pieces they share with the stream
//! processor and the local stack.
//!
//! Each route is a plain async function over `aws_lambda_events` types, so the
//! same code runs inside a `lambda_runtime` binary (see `src/bin/`) and
//! in-process in the local stack.

pub mod config;
pub mod error;
pub mod fanout;
pub mod lambda;
pub mod management;
pub mod metric;
pub mod offline;
pub mod protocol;
pub mod records;
pub mod routes;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use config::{Limits, Settings, Tables};
pub use error::Error;
pub use management::Management;
pub use routes::{connect, default, disconnect, sendmessage};
pub use store::Store;

/// Everything a handler needs, built once per process (at cold start on
/// Lambda) and shared by every invocation.
#[derive(Clone, Debug)]
pub struct Chat {
    pub store: Store,
    pub management: Management,
    pub limits: Limits,
}

impl Chat {
    pub fn new(store: Store, management: Management, limits: Limits) -> Self {
        Self {
            store,
            management,
            limits,
        }
    }

    /// Builds the clients from a loaded AWS configuration and the settings.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, settings: Settings) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Self::new(
            Store::new(dynamodb, settings.tables),
            Management::new(sdk, settings.management_endpoint),
            settings.limits,
        )
    }
}
