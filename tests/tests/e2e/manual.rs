//! Manual creation (R-MAN-1, R-MAN-2) and how its identity items behave.

use intake_tests::TestEnv;
use serde_json::json;

#[tokio::test]
async fn r_man_2_empty_contact_gets_only_the_default_country() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let r = env
        .call("POST", "/v1/contacts", &key, Some(json!({})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = &r.body["contact"];
    assert_eq!(c["country"], "NO");
    for field in [
        "first_name",
        "last_name",
        "email",
        "mobile",
        "company",
        "city",
        "note",
    ] {
        assert!(c[field].is_null(), "{field} should be empty");
    }
    assert_eq!(env.contact_count(&account).await, 1);
    assert!(env.identities(&account).await.is_empty());
}

#[tokio::test]
async fn r_man_1_two_manual_creates_with_one_mobile_give_two_contacts_and_matching_keeps_the_first()
{
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let first = env
        .call(
            "POST",
            "/v1/contacts",
            &key,
            Some(json!({"mobile": "41234567", "first_name": "A"})),
        )
        .await;
    let second = env
        .call(
            "POST",
            "/v1/contacts",
            &key,
            Some(json!({"mobile": "+47 412 34 567", "first_name": "B"})),
        )
        .await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_ne!(first.body["id"], second.body["id"]);
    assert_eq!(env.contact_count(&account).await, 2);
    let identities = env.identities(&account).await;
    assert_eq!(
        identities.len(),
        1,
        "one identity item per value: {identities:?}"
    );
    assert_eq!(
        identities.values().next().unwrap(),
        first.body["id"].as_str().unwrap(),
        "the first carrier owns it"
    );
    let upsert = env
        .call(
            "PUT",
            "/v1/contacts",
            &key,
            Some(json!({"contact": {"mobile": "41234567", "city": "Oslo"}})),
        )
        .await;
    assert_eq!(
        (upsert.body["id"].clone(), upsert.body["outcome"].as_str()),
        (first.body["id"].clone(), Some("updated"))
    );
    let both = env
        .call("GET", "/v1/contacts?mobile=41234567", &key, None)
        .await;
    assert_eq!(
        both.body["contacts"].as_array().unwrap().len(),
        2,
        "look-up lists every carrier"
    );
}

#[tokio::test]
async fn manual_create_refuses_malformed_values_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let r = env
        .call("POST", "/v1/contacts", &key, Some(json!({"email": "nope"})))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("email"))
    );
    assert_eq!(env.contact_count(&account).await, 0);
}
