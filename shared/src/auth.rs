//! API keys: generated at random, shown once, stored only as a SHA-256 hash (high-entropy
//! keys need no slow hash). Authentication turns a bearer token into a `Principal`.

use sha2::{Digest, Sha256};

use crate::model::AccountId;
use crate::store::settings::Role;
use crate::store::{Store, StoreError};

/// Who is calling: the account every read and write is scoped to, and the key's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: AccountId,
    pub role: Role,
    pub key_id: String,
}

/// Errors of authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed Authorization header")]
    Missing,
    #[error("unknown or revoked API key")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key: the clear text (returned once) and the hash that is stored.
pub struct NewKey {
    pub clear: String,
    pub hash: String,
    pub key_id: String,
}

pub fn hash_key(clear: &str) -> String {
    hex::encode(Sha256::digest(clear.as_bytes()))
}

pub fn generate_key() -> NewKey {
    let secret: [u8; 32] = rand::random();
    let clear = format!("ik_{}", hex::encode(secret));
    let key_id: [u8; 8] = rand::random();
    NewKey {
        hash: hash_key(&clear),
        clear,
        key_id: format!("key_{}", hex::encode(key_id)),
    }
}

/// Constant-time equality of two byte strings of equal length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Looks the key up by its hash; revoked and unknown keys are both `Invalid`.
pub async fn authenticate(store: &Store, header: Option<&str>) -> Result<Principal, AuthError> {
    let token = bearer(header).ok_or(AuthError::Missing)?;
    let record = store
        .api_key(&hash_key(token))
        .await?
        .ok_or(AuthError::Invalid)?;
    if record.revoked {
        return Err(AuthError::Invalid);
    }
    Ok(Principal {
        account_id: record.account_id,
        role: record.role,
        key_id: record.key_id,
    })
}

/// True when `header` carries the operator key whose hash is `operator_hash`.
pub fn is_operator(header: Option<&str>, operator_hash: &str) -> bool {
    bearer(header)
        .is_some_and(|t| constant_time_eq(hash_key(t).as_bytes(), operator_hash.as_bytes()))
}

/// The authorizer's answer as API Gateway passes it to handlers (`requestContext.authorizer.
/// lambda`). The authorizer always allows and says here whether the key was good, so handlers
/// answer 401 in the contract's error shape (an HTTP API turns a denial into a bare 403).
pub fn authorizer_context(
    result: &Result<Principal, AuthError>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut ctx = serde_json::Map::new();
    match result {
        Ok(p) => {
            ctx.insert("authenticated".into(), true.into());
            ctx.insert("account_id".into(), p.account_id.0.clone().into());
            ctx.insert(
                "role".into(),
                serde_json::to_value(p.role).unwrap_or_default(),
            );
            ctx.insert("key_id".into(), p.key_id.clone().into());
        }
        Err(e) => {
            ctx.insert("authenticated".into(), false.into());
            ctx.insert("reason".into(), e.to_string().into());
        }
    }
    ctx
}

/// Reads the principal back from an authorizer context.
pub fn principal_from_context(
    ctx: &std::collections::HashMap<String, serde_json::Value>,
) -> Result<Principal, AuthError> {
    if ctx.get("authenticated").and_then(|v| v.as_bool()) != Some(true) {
        let missing =
            ctx.get("reason").and_then(|r| r.as_str()) == Some(&AuthError::Missing.to_string());
        return Err(if missing {
            AuthError::Missing
        } else {
            AuthError::Invalid
        });
    }
    let text = |k: &str| {
        ctx.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(AuthError::Invalid)
    };
    Ok(Principal {
        account_id: AccountId(text("account_id")?),
        role: serde_json::from_value(ctx.get("role").cloned().unwrap_or_default())
            .map_err(|_| AuthError::Invalid)?,
        key_id: text("key_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_extracts_token_when_scheme_any_case() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn generated_keys_differ_and_only_hash_matches_when_created() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a.clear, b.clear);
        assert_eq!(hash_key(&a.clear), a.hash);
        assert!(!a.hash.contains(&a.clear));
    }

    #[test]
    fn operator_check_fails_when_key_differs() {
        let h = hash_key("op");
        assert!(is_operator(Some("Bearer op"), &h));
        assert!(!is_operator(Some("Bearer oq"), &h));
        assert!(!is_operator(None, &h));
    }
}
