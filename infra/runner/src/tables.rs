//! Creates the DynamoDB tables of `template.yaml` on DynamoDB Local (same keys, GSIs and TTL),
//! under a name prefix so tests and runs never share tables.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde_yaml::Value;

use crate::template::Template;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn key_schema(v: Option<&Value>) -> anyhow::Result<Vec<KeySchemaElement>> {
    v.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(s(k, "AttributeName"))
                .key_type(KeyType::from(s(k, "KeyType")))
                .build()?)
        })
        .collect()
}

/// The local name of a table.
pub fn table_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}{logical_id}")
}

/// Creates every table of the template that does not exist yet; returns their names.
pub async fn create_tables(
    client: &Client,
    template: &Template,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let existing = client
        .list_tables()
        .send()
        .await?
        .table_names
        .unwrap_or_default();
    let mut names = Vec::new();
    for (id, props) in &template.tables {
        let name = table_name(prefix, id);
        names.push(name.clone());
        if existing.contains(&name) {
            continue;
        }
        let attrs = props
            .get("AttributeDefinitions")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|a| {
                Ok(AttributeDefinition::builder()
                    .attribute_name(s(a, "AttributeName"))
                    .attribute_type(ScalarAttributeType::from(s(a, "AttributeType")))
                    .build()?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut gsis = Vec::new();
        for g in props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let projection = g
                .get("Projection")
                .map(|p| s(p, "ProjectionType"))
                .unwrap_or("ALL");
            gsis.push(
                GlobalSecondaryIndex::builder()
                    .index_name(s(g, "IndexName"))
                    .set_key_schema(Some(key_schema(g.get("KeySchema"))?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(projection))
                            .build(),
                    )
                    .build()?,
            );
        }
        client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attrs))
            .set_key_schema(Some(key_schema(props.get("KeySchema"))?))
            .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
            .send()
            .await?;
        if let Some(ttl) = props.get("TimeToLiveSpecification") {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(s(ttl, "AttributeName"))
                .enabled(true)
                .build()?;
            client
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(spec)
                .send()
                .await?;
        }
    }
    Ok(names)
}
