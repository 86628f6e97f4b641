//! Forms and SMS-link tokens in the settings table. A form is found by its id alone (the
//! webhook carries no API key); it names its account. Tokens are stored by their SHA-256.

use crate::forms::{Form, FormToken};

use super::items;
use super::{Store, StoreError};

fn form_pk(form_id: &str) -> String {
    format!("FORM#{form_id}")
}

fn token_pk(token_hash: &str) -> String {
    format!("FORMTOKEN#{token_hash}")
}

impl Store {
    pub async fn put_form(&self, form: &Form) -> Result<(), StoreError> {
        let item = items::encode(form_pk(&form.form_id), "FORM", form)?;
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
        self.get_as(&self.tables().settings, key).await
    }

    /// Stores tokens, each under the hash of its clear text.
    pub async fn put_form_tokens(&self, tokens: &[(String, FormToken)]) -> Result<(), StoreError> {
        let items = tokens
            .iter()
            .map(|(hash, t)| items::encode(token_pk(hash), "TOKEN", t))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put(&self.tables().settings, items).await
    }

    pub async fn form_token(&self, token_hash: &str) -> Result<Option<FormToken>, StoreError> {
        let key = items::key(token_pk(token_hash), "TOKEN");
        self.get_as(&self.tables().settings, key).await
    }
}
