//! Tenant isolation: account A's key against account B's ids sees 404, never B's data.

use intake_tests::TestEnv;
use serde_json::json;

#[tokio::test]
async fn isolation_every_endpoint_answers_404_for_another_accounts_ids() {
    let env = TestEnv::new().await;
    let (_, key_a) = env.account("NO").await;
    let (account_b, key_b) = env.account("SE").await;
    let contact_b = env
        .call(
            "PUT",
            "/v1/contacts",
            &key_b,
            Some(json!({"contact": {"email": "b@example.se", "first_name": "Bea"}})),
        )
        .await;
    let id_b = contact_b.body["id"].as_str().unwrap().to_owned();
    let (key_id_b, _) = env.key(&key_b, "member").await;
    let form_b = env.form(&key_b, None).await;

    let get = env
        .call("GET", &format!("/v1/contacts/{id_b}"), &key_a, None)
        .await;
    assert_eq!(get.status, 404);
    let revoke = env
        .call("DELETE", &format!("/v1/api-keys/{key_id_b}"), &key_a, None)
        .await;
    assert_eq!(revoke.status, 404);
    let links = env
        .call(
            "POST",
            &format!("/v1/forms/{}/sms-links", form_b.id),
            &key_a,
            Some(json!({"mobiles": ["41234567"]})),
        )
        .await;
    assert_eq!(links.status, 404);
    let look = env
        .call("GET", "/v1/contacts?email=b%40example.se", &key_a, None)
        .await;
    assert_eq!(look.body["contacts"], json!([]));
    let settings = env.call("GET", "/v1/settings", &key_a, None).await;
    assert_eq!(
        settings.body["default_country"], "NO",
        "A sees its own settings"
    );
    for r in [&get, &revoke, &links, &look] {
        assert!(
            !r.body.to_string().contains("b@example.se") && !r.body.to_string().contains("Bea")
        );
    }
    let still = env
        .call("GET", &format!("/v1/contacts/{id_b}"), &key_b, None)
        .await;
    assert_eq!(still.body["first_name"], "Bea");
    let b_key_works = env
        .call(
            "GET",
            "/v1/settings",
            &env.key(&key_b, "admin").await.1,
            None,
        )
        .await;
    assert_eq!(b_key_works.status, 200);
    assert_eq!(env.contact_count(&account_b).await, 1);
}
