//! Accounts, keys and settings (issue 3): roles (R-OPS-1), revocation, hashed storage.

use intake_tests::TestEnv;
use serde_json::json;

#[tokio::test]
async fn keys_member_gets_403_on_admin_endpoints_but_may_upsert() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let (admin_key_id, _) = env.key(&admin, "admin").await;
    let (_, member) = env.key(&admin, "member").await;
    let attempts = [
        (
            "PUT",
            "/v1/settings".to_owned(),
            json!({"default_country": "SE"}),
        ),
        ("POST", "/v1/api-keys".to_owned(), json!({"role": "admin"})),
        (
            "DELETE",
            format!("/v1/api-keys/{admin_key_id}"),
            json!(null),
        ),
        ("POST", "/v1/forms".to_owned(), json!({"name": "x"})),
    ];
    for (method, path, body) in attempts {
        let r = env
            .call(method, &path, &member, (!body.is_null()).then_some(body))
            .await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    let settings = env.call("GET", "/v1/settings", &member, None).await;
    assert_eq!(
        (settings.status, settings.body["default_country"].as_str()),
        (200, Some("NO")),
        "settings unchanged"
    );
    let upsert = env
        .call(
            "PUT",
            "/v1/contacts",
            &member,
            Some(json!({"contact": {"email": "m@example.no"}})),
        )
        .await;
    assert_eq!(upsert.status, 201);
}

#[tokio::test]
async fn keys_revoked_key_gets_401() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let (id, member) = env.key(&admin, "member").await;
    assert_eq!(
        env.call("GET", "/v1/settings", &member, None).await.status,
        200
    );
    let r = env
        .call("DELETE", &format!("/v1/api-keys/{id}"), &admin, None)
        .await;
    assert_eq!((r.status, &r.body["revoked"]), (200, &json!(true)));
    let after = env.call("GET", "/v1/settings", &member, None).await;
    assert_eq!(
        (after.status, after.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let (_, member) = env.key(&admin, "member").await;
    let items = env
        .store
        .client()
        .scan()
        .table_name(&env.store.tables().settings)
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", items.items());
    assert!(
        dump.contains(&intake_shared::auth::hash_key(&member)),
        "the hash is stored"
    );
    assert!(
        !dump.contains(&admin) && !dump.contains(&member),
        "no key in clear"
    );
}

#[tokio::test]
async fn r_wiz_6_settings_round_trip_vocabularies_and_custom_fields() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let settings = json!({
        "default_country": "se",
        "opt_in": {"email_marketing": {"in": ["OptIn"], "out": ["OptOut"]}, "sms_marketing": {"in": ["ja"], "out": ["nei"]}},
        "custom_fields": [{"name": "shoe_size", "type": "number"}, {"name": "vip", "type": "bool"}]
    });
    let put = env
        .call("PUT", "/v1/settings", &admin, Some(settings))
        .await;
    assert_eq!(
        (put.status, put.body["default_country"].as_str()),
        (200, Some("SE")),
        "{}",
        put.body
    );
    let got = env.call("GET", "/v1/settings", &admin, None).await;
    assert_eq!(
        got.body["opt_in"]["email_marketing"]["in"],
        json!(["OptIn"])
    );
    assert_eq!(got.body["custom_fields"][1]["type"], "bool");
    let bad = env
        .call(
            "PUT",
            "/v1/settings",
            &admin,
            Some(json!({"default_country": "XX"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (422, Some("default_country"))
    );
    let unknown = env
        .call(
            "PUT",
            "/v1/settings",
            &admin,
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn accounts_need_the_operator_key() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let r = env
        .call(
            "POST",
            "/v1/accounts",
            &admin,
            Some(json!({"name": "Sneaky"})),
        )
        .await;
    assert_eq!(r.status, 401, "an admin key is not the operator key");
    let none = env
        .send("POST", "/v1/accounts", &[], r#"{"name": "x"}"#)
        .await;
    assert_eq!(none.status, 401);
}
