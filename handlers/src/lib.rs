//! The chat's core and its route handlers: what runs on Lambda.
//!
//! Each route is a plain async function over `aws_lambda_events` types, so the
//! same code runs inside a `lambda_runtime` binary (see `src/bin/`) and
//! in-process in the local stack. Adapters: [`store`] (DynamoDB, the only
//! module that sees attribute maps) and [`management`] (the Management API).

pub mod access;
pub mod admission;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod error;
pub mod fanout;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod limits;
pub mod management;
pub mod metric;
pub mod name;
pub mod protocol;
pub mod rate;
pub mod reconcile;
pub mod records;
pub mod retry_budget;
pub mod room;
pub mod routes;
pub mod store;
pub mod time;

pub use config::{Settings, Tables};
pub use error::Error;
pub use limits::ChatLimits;
pub use management::{Management, ManagementEndpoint};
pub use name::DisplayName;
pub use records::Retention;
pub use room::Room;
pub use routes::{authorize, connect, default, disconnect, history, moderate, sendmessage};
pub use store::Store;

/// Everything a handler that touches the tables or posts to connections
/// needs, built once per process (at cold start on Lambda) and shared by
/// every invocation.
#[derive(Clone, Debug)]
pub struct Chat {
    pub store: Store,
    pub management: Management,
    pub limits: ChatLimits,
    pub retention: Retention,
    /// Who of the signed-in users may join which room.
    pub access: access::RoomAccess,
    /// Where a large room's fan-out hands its rest (`FANOUT_FUNCTION`);
    /// `None`: every fan-out posts to the whole room itself.
    pub workers: Option<fanout::Workers>,
}

impl Chat {
    /// Builds the clients from a loaded AWS configuration and the settings.
    #[cfg(feature = "aws")]
    pub fn from_sdk_config(sdk: &aws_types::SdkConfig, settings: Settings) -> Self {
        Self {
            store: Store::new(
                aws_sdk_dynamodb::Client::from_conf(store::dynamodb_config(sdk).build()),
                settings.tables,
            ),
            management: Management::new(sdk, &settings.management_endpoint),
            limits: settings.limits,
            retention: settings.retention,
            access: settings.access,
            workers: settings
                .fanout_function
                .map(|function| fanout::Workers::new(aws_sdk_lambda::Client::new(sdk), function)),
        }
    }
}
