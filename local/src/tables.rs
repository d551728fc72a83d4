//! The three tables, created locally exactly as infra/ creates them on AWS:
//! both read infra/tables.json (keys, stream view, TTL attribute), and
//! infra/tests check the deployed template against the same file.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
};
use handlers::Tables;
use handlers::error::StoreError;
use serde::Deserialize;

/// The tables' schemas, shared with infra/serverless.yml's tests.
pub const TABLES_JSON: &str = include_str!("../../infra/tables.json");

/// One table as infra/tables.json describes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// CloudFormation logical id in infra/serverless.yml.
    pub resource: String,
    /// The environment variable that names the table for the functions.
    pub environment: String,
    /// Key attributes and their DynamoDB types (`S`, `N`, `B`).
    pub attributes: BTreeMap<String, String>,
    pub hash_key: String,
    /// The sort key, if the table has one.
    pub range_key: Option<String>,
    /// Stream view type, if the table has a stream.
    pub stream: Option<String>,
    /// TTL attribute, if the table has one.
    pub ttl: Option<String>,
    /// Global secondary indexes, by name.
    pub indexes: BTreeMap<String, IndexSchema>,
}

/// A global secondary index.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IndexSchema {
    pub hash_key: String,
    pub range_key: Option<String>,
    /// `KEYS_ONLY`, `INCLUDE` or `ALL`.
    pub projection: String,
    /// With `INCLUDE`: the other attributes the index holds.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// Every table, by its tutorial name (`ActiveConnections`, ...).
pub fn schemas() -> Result<BTreeMap<String, TableSchema>, serde_json::Error> {
    serde_json::from_str(TABLES_JSON)
}

/// The schema of each of `tables`, paired with its actual name.
fn named<'a>(
    schemas: &'a BTreeMap<String, TableSchema>,
    tables: &'a Tables,
) -> Vec<(&'a str, Option<&'a TableSchema>)> {
    [
        ("ActiveConnections", &tables.active_connections),
        ("SessionHistory", &tables.session_history),
        ("MessageHistory", &tables.message_history),
        ("Moderation", &tables.moderation),
    ]
    .into_iter()
    .map(|(logical, name)| (name.as_str(), schemas.get(logical)))
    .collect()
}

/// Why the tables could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("infra/tables.json does not parse: {0}")]
    Schema(#[from] serde_json::Error),
    #[error("infra/tables.json has no {0} table")]
    MissingSchema(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TablesError {
    /// The failed AWS call, if that is what went wrong.
    pub fn aws(&self) -> Option<&handlers::error::AwsError> {
        match self {
            Self::Store(error) => error.aws(),
            Self::Schema(_) | Self::MissingSchema(_) => None,
        }
    }
}

/// Creates whichever of the tables do not exist yet (on-demand billing),
/// with their streams and TTL.
pub async fn ensure(client: &Client, tables: &Tables) -> Result<(), TablesError> {
    let schemas = schemas()?;
    let existing = list_tables(client).await?;
    for (name, schema) in named(&schemas, tables) {
        let schema = schema.ok_or_else(|| TablesError::MissingSchema(name.to_owned()))?;
        if existing.iter().any(|table| table == name) {
            add_missing_indexes(client, name, schema).await?;
        } else {
            create(client, name, schema).await?;
            wait_until_active(client, name).await?;
        }
        if let Some(attribute) = &schema.ttl {
            enable_ttl(client, name, attribute).await?;
        }
    }
    Ok(())
}

async fn create(client: &Client, name: &str, schema: &TableSchema) -> Result<(), StoreError> {
    let keys = std::iter::once((&schema.hash_key, KeyType::Hash))
        .chain(schema.range_key.iter().map(|range| (range, KeyType::Range)))
        .map(|(attribute, kind)| {
            KeySchemaElement::builder()
                .attribute_name(attribute)
                .key_type(kind)
                .build()
                .map_err(StoreError::request("CreateTable"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys))
        .set_attribute_definitions(Some(attribute_definitions(schema, "CreateTable")?));
    for (name, index) in &schema.indexes {
        request = request.global_secondary_indexes(global_index(name, index)?);
    }
    if let Some(view) = &schema.stream {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(StoreError::request("CreateTable"))?,
        );
    }
    request
        .send()
        .await
        .map_err(StoreError::call("CreateTable"))?;
    Ok(())
}

/// The table's key attributes and types, for `operation`'s request.
fn attribute_definitions(
    schema: &TableSchema,
    operation: &'static str,
) -> Result<Vec<AttributeDefinition>, StoreError> {
    schema
        .attributes
        .iter()
        .map(|(attribute, kind)| {
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(StoreError::request(operation))
        })
        .collect()
}

fn global_index(name: &str, index: &IndexSchema) -> Result<GlobalSecondaryIndex, StoreError> {
    let key = |attribute: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(kind)
            .build()
            .map_err(StoreError::request("CreateTable"))
    };
    let mut builder = GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(&index.hash_key, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::from(index.projection.as_str()))
                .set_non_key_attributes(
                    (!index.non_key_attributes.is_empty())
                        .then(|| index.non_key_attributes.clone()),
                )
                .build(),
        );
    if let Some(range) = &index.range_key {
        builder = builder.key_schema(key(range, KeyType::Range)?);
    }
    builder.build().map_err(StoreError::request("CreateTable"))
}

/// Creates the indexes a table made by an earlier version lacks (in a data
/// directory kept across an upgrade), one at a time, as DynamoDB requires.
async fn add_missing_indexes(
    client: &Client,
    name: &str,
    schema: &TableSchema,
) -> Result<(), StoreError> {
    let existing: Vec<String> = describe(client, name)
        .await?
        .and_then(|table| table.global_secondary_indexes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|index| index.index_name)
        .collect();
    for (index_name, index) in &schema.indexes {
        if existing.contains(index_name) {
            continue;
        }
        let index = global_index(index_name, index)?;
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(index_name)
            .set_key_schema(Some(index.key_schema))
            .set_projection(index.projection)
            .build()
            .map_err(StoreError::request("UpdateTable"))?;
        client
            .update_table()
            .table_name(name)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .set_attribute_definitions(Some(attribute_definitions(schema, "UpdateTable")?))
            .send()
            .await
            .map_err(StoreError::call("UpdateTable"))?;
        wait_until_active(client, name).await?;
    }
    Ok(())
}

async fn enable_ttl(client: &Client, table: &str, attribute: &str) -> Result<(), StoreError> {
    let result = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .map_err(StoreError::request("UpdateTimeToLive"))?,
        )
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // Enabling TTL twice is refused by some engines: it is already on.
        Err(error)
            if error
                .raw_response()
                .is_some_and(|response| response.status().as_u16() == 400) =>
        {
            Ok(())
        }
        Err(error) => Err(StoreError::call("UpdateTimeToLive")(error)),
    }
}

async fn list_tables(client: &Client) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let mut pages = client.list_tables().into_paginator().send();
    while let Some(page) = pages.next().await {
        names.extend(
            page.map_err(StoreError::call("ListTables"))?
                .table_names
                .unwrap_or_default(),
        );
    }
    Ok(names)
}

/// DynamoDB Local and AWS create tables asynchronously.
async fn wait_until_active(client: &Client, name: &str) -> Result<(), StoreError> {
    for _ in 0..100 {
        // The table and every index being built on it (an engine that
        // reports no index status has none being built).
        let active = describe(client, name).await?.is_some_and(|table| {
            table.table_status == Some(TableStatus::Active)
                && table
                    .global_secondary_indexes
                    .unwrap_or_default()
                    .iter()
                    .all(|index| {
                        index
                            .index_status
                            .as_ref()
                            .is_none_or(|status| *status == IndexStatus::Active)
                    })
        });
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The stream ARN of `table`, if it has a stream.
pub async fn stream_arn(client: &Client, table: &str) -> Result<Option<String>, StoreError> {
    Ok(describe(client, table)
        .await?
        .and_then(|table| table.latest_stream_arn))
}

/// What DescribeTable says of `table`.
async fn describe(
    client: &Client,
    table: &str,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, StoreError> {
    Ok(client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(StoreError::call("DescribeTable"))?
        .table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_schema_names_the_three_tables_and_their_variables() {
        let schemas = schemas().expect("infra/tables.json parses");
        let names: Vec<_> = schemas.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "ActiveConnections",
                "MessageHistory",
                "Moderation",
                "SessionHistory"
            ]
        );
        // Each variable names the table the handlers read it for
        // (handlers::config::var), whose default name is its logical one.
        let defaults = Tables::default();
        let variables = defaults.variables();
        assert_eq!(variables.len(), schemas.len());
        for (variable, logical) in variables {
            assert_eq!(schemas[logical].environment, variable);
            let schema = &schemas[logical];
            assert!(
                schema.attributes.contains_key(&schema.hash_key),
                "{logical}: the hash key is defined"
            );
        }
        assert_eq!(
            schemas["SessionHistory"].stream.as_deref(),
            Some("NEW_AND_OLD_IMAGES"),
            "the stream processor needs both images"
        );
        // The indexes the deployed code queries, by the names it uses.
        let room_index = &schemas["ActiveConnections"].indexes[handlers::store::ROOM_INDEX];
        assert_eq!(room_index.hash_key, "room_shard");
        let user_index = &schemas["ActiveConnections"].indexes[handlers::store::USER_INDEX];
        assert_eq!(
            (
                user_index.hash_key.as_str(),
                &user_index.non_key_attributes[..]
            ),
            ("user_id", &["room".to_owned()][..]),
            "a ban finds the user's connections and their rooms"
        );
        assert_eq!(
            (
                schemas["Moderation"].hash_key.as_str(),
                schemas["Moderation"].range_key.as_deref()
            ),
            ("room", Some("entry")),
            "a ban is one GetItem by room and user"
        );
        let history = &schemas["MessageHistory"].indexes[handlers::store::HISTORY_INDEX];
        assert_eq!(
            (history.hash_key.as_str(), history.range_key.as_deref()),
            ("room", Some("time_order"))
        );
        assert_eq!(
            history.projection, "ALL",
            "pages are read from the index alone"
        );
        let open = &schemas["SessionHistory"].indexes[handlers::store::OPEN_SESSIONS_INDEX];
        assert_eq!(
            (open.hash_key.as_str(), open.range_key.as_deref()),
            ("open_shard", Some("connected_at"))
        );
        for (logical, schema) in &schemas {
            for (name, index) in &schema.indexes {
                for key in std::iter::once(&index.hash_key).chain(&index.range_key) {
                    assert!(
                        schema.attributes.contains_key(key),
                        "{logical} {name}: {key}"
                    );
                }
            }
        }
    }
}
