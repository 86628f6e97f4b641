//! Forms and SMS-link tokens in the settings table. A form is found by its id alone (the
//! webhook carries no API key); it names its account. Tokens are stored by their SHA-256.

use crate::forms::{Form, FormToken};

use super::items::{self, Item};
use super::{Store, StoreError};

fn form_pk(form_id: &str) -> String {
    format!("FORM#{form_id}")
}

fn token_pk(token_hash: &str) -> String {
    format!("FORMTOKEN#{token_hash}")
}

fn encode<T: serde::Serialize>(pk: String, sk: &str, value: &T) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Encode(e.to_string()))?;
    item.extend(items::key(pk, sk));
    Ok(item)
}

fn decode<T: for<'de> serde::Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    let key = items::string_attr(&item, items::PK).unwrap_or_default();
    serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
        key,
        reason: e.to_string(),
    })
}

impl Store {
    pub async fn put_form(&self, form: &Form) -> Result<(), StoreError> {
        let item = encode(form_pk(&form.form_id), "FORM", form)?;
        self.client()
            .put_item()
            .table_name(&self.tables().settings)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::service("PutItem", e))?;
        Ok(())
    }

    pub async fn form(&self, form_id: &str) -> Result<Option<Form>, StoreError> {
        let key = items::key(form_pk(form_id), "FORM");
        self.get(&self.tables().settings, key)
            .await?
            .map(decode)
            .transpose()
    }

    /// Stores tokens, each under the hash of its clear text.
    pub async fn put_form_tokens(&self, tokens: &[(String, FormToken)]) -> Result<(), StoreError> {
        let items = tokens
            .iter()
            .map(|(hash, t)| encode(token_pk(hash), "TOKEN", t))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put(&self.tables().settings, items).await
    }

    pub async fn form_token(&self, token_hash: &str) -> Result<Option<FormToken>, StoreError> {
        let key = items::key(token_pk(token_hash), "TOKEN");
        self.get(&self.tables().settings, key)
            .await?
            .map(decode)
            .transpose()
    }
}
