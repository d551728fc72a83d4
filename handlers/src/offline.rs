//! What running without AWS needs: SDK configuration with placeholder
//! credentials for local endpoints, and the three tables created as infra/
//! creates them on AWS.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use crate::config::Tables;
use crate::error::StoreError;

/// Region used for every local client; local endpoints accept any.
pub const LOCAL_REGION: &str = "us-east-1";

/// SDK configuration for endpoints on this machine: a fixed region and
/// placeholder credentials (local engines accept any, and never look for real
/// ones).
pub fn local_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "chat-local",
        )))
        .build()
}

/// A DynamoDB client for `endpoint` with the local configuration.
pub fn dynamodb_client(sdk: &SdkConfig, endpoint: &str) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// Creates whichever of the three tables do not exist yet, as infra/ defines
/// them: string partition keys, on-demand billing, the SessionHistory stream
/// with new and old images, TTL on ActiveConnections' `ttl`.
pub async fn ensure_tables(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    let existing = list_tables(client).await?;
    let wanted = [
        (&tables.active_connections, "connection_id", false),
        (&tables.session_history, "connection_id", true),
        (&tables.message_history, "message_id", false),
    ];
    for (name, key, with_stream) in wanted {
        if existing.iter().any(|table| table == name) {
            continue;
        }
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|error| StoreError::dynamo("CreateTable", error))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|error| StoreError::dynamo("CreateTable", error))?,
            );
        if with_stream {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|error| StoreError::dynamo("CreateTable", error))?,
            );
        }
        request
            .send()
            .await
            .map_err(|error| StoreError::dynamo("CreateTable", error))?;
        wait_until_active(client, name).await?;
    }
    let ttl = client
        .update_time_to_live()
        .table_name(&tables.active_connections)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|error| StoreError::dynamo("UpdateTimeToLive", error))?,
        )
        .send()
        .await;
    match ttl {
        Ok(_) => Ok(()),
        // Enabling TTL twice is refused by some engines: it is already on.
        Err(error)
            if error
                .raw_response()
                .is_some_and(|response| response.status().as_u16() == 400) =>
        {
            Ok(())
        }
        Err(error) => Err(StoreError::dynamo("UpdateTimeToLive", error)),
    }
}

async fn list_tables(client: &Client) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let mut pages = client.list_tables().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|error| StoreError::dynamo("ListTables", error))?;
        names.extend(page.table_names.unwrap_or_default());
    }
    Ok(names)
}

/// DynamoDB Local and AWS create tables asynchronously.
async fn wait_until_active(client: &Client, name: &str) -> Result<(), StoreError> {
    for _ in 0..100 {
        let output = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("DescribeTable", error))?;
        let active = output
            .table
            .and_then(|table| table.table_status)
            .is_some_and(|status| status == aws_sdk_dynamodb::types::TableStatus::Active);
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
