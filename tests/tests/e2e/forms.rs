//! Signup-form webhooks (R-FORM-1..4): signatures, delivery ids, SMS tokens, consent evidence.

use intake_tests::{TestEnv, TestForm};
use serde_json::{json, Value};

const JSON: &str = "application/json";
const URLENC: &str = "application/x-www-form-urlencoded";

async fn setup() -> (TestEnv, intake_shared::model::AccountId, String, TestForm) {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let form = env.form(&key, Some("newsletter")).await;
    (env, account, key, form)
}

async fn existing(env: &TestEnv, key: &str, contact: Value) -> String {
    let r = env
        .call(
            "PUT",
            "/v1/contacts",
            key,
            Some(json!({ "contact": contact })),
        )
        .await;
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn r_form_1_email_only_updates_the_email_owner_or_creates() {
    let (env, account, key, form) = setup().await;
    let id = existing(
        &env,
        &key,
        json!({"email": "ola@example.no", "mobile": "41234567"}),
    )
    .await;
    let r = env
        .submit(
            &form,
            JSON,
            r#"{"email": "OLA@example.no", "first_name": "Ola"}"#,
            None,
            0,
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["contact_id"].as_str(),
            r.body["matched_on"].as_str()
        ),
        (200, Some(id.as_str()), Some("email")),
        "{}",
        r.body
    );
    let new = env
        .submit(&form, JSON, r#"{"email": "kari@example.no"}"#, None, 0)
        .await;
    assert_eq!(new.body["outcome"], "created");
    assert_eq!(env.contact_count(&account).await, 2);
}

#[tokio::test]
async fn r_form_2_mobile_only_updates_the_mobile_owner_or_creates() {
    let (env, account, key, form) = setup().await;
    let id = existing(&env, &key, json!({"mobile": "41234567"})).await;
    let r = env
        .submit(
            &form,
            JSON,
            r#"{"mobile": "+47 412 34 567", "city": "Oslo"}"#,
            None,
            0,
        )
        .await;
    assert_eq!(
        (r.body["contact_id"].as_str(), r.body["outcome"].as_str()),
        (Some(id.as_str()), Some("updated"))
    );
    let new = env
        .submit(&form, JSON, r#"{"mobile": "41234568"}"#, None, 0)
        .await;
    assert_eq!(new.body["outcome"], "created");
    assert_eq!(env.contact_count(&account).await, 2);
}

#[tokio::test]
async fn r_form_3_both_with_unknown_mobile_creates_new_contact_even_if_email_exists() {
    let (env, account, key, form) = setup().await;
    let id = existing(
        &env,
        &key,
        json!({"email": "ola@example.no", "mobile": "41234567"}),
    )
    .await;
    let r = env
        .submit(
            &form,
            JSON,
            r#"{"email": "ola@example.no", "mobile": "41234599"}"#,
            None,
            0,
        )
        .await;
    assert_eq!(r.body["outcome"], "created", "{}", r.body);
    assert_ne!(r.body["contact_id"].as_str(), Some(id.as_str()));
    assert_eq!(env.contact_count(&account).await, 2);
    let known = env
        .submit(
            &form,
            JSON,
            r#"{"email": "other@example.no", "mobile": "41234567"}"#,
            None,
            0,
        )
        .await;
    assert_eq!(
        (
            known.body["contact_id"].as_str(),
            known.body["matched_on"].as_str()
        ),
        (Some(id.as_str()), Some("mobile"))
    );
}

#[tokio::test]
async fn r_form_4_token_without_fields_updates_the_sms_recipient() {
    let (env, _, key, form) = setup().await;
    let id = existing(&env, &key, json!({"mobile": "41234567"})).await;
    let links = env
        .call(
            "POST",
            &format!("/v1/forms/{}/sms-links", form.id),
            &key,
            Some(json!({"mobiles": ["412 34 567"]})),
        )
        .await;
    assert_eq!(links.status, 200, "{}", links.body);
    let link = &links.body["links"][0];
    assert_eq!(link["mobile"], "+4741234567");
    assert!(link["url"]
        .as_str()
        .unwrap()
        .contains(link["token"].as_str().unwrap()));
    let body = format!(
        "token={}&sms_marketing=yes",
        link["token"].as_str().unwrap()
    );
    let r = env.submit(&form, URLENC, &body, None, 0).await;
    assert_eq!(
        (
            r.status,
            r.body["contact_id"].as_str(),
            r.body["outcome"].as_str()
        ),
        (200, Some(id.as_str()), Some("updated")),
        "{}",
        r.body
    );
    let c = env
        .call("GET", &format!("/v1/contacts/{id}"), &key, None)
        .await;
    assert_eq!(c.body["sms_marketing"]["status"], "opted_in");
    let with_email = env
        .submit(
            &form,
            URLENC,
            &format!(
                "token={}&email=new%40example.no",
                link["token"].as_str().unwrap()
            ),
            None,
            0,
        )
        .await;
    assert_eq!(
        with_email.body["contact_id"].as_str(),
        Some(id.as_str()),
        "token + email follows R-FORM-3 on the token's mobile"
    );
}

#[tokio::test]
async fn form_forged_token_is_rejected_and_nothing_written() {
    let (env, account, _, form) = setup().await;
    let r = env
        .submit(&form, URLENC, "token=forged0000&first_name=Eve", None, 0)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (422, Some("invalid_token"))
    );
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn form_token_of_another_form_is_rejected() {
    let (env, account, key, form) = setup().await;
    let other = env.form(&key, None).await;
    let links = env
        .call(
            "POST",
            &format!("/v1/forms/{}/sms-links", other.id),
            &key,
            Some(json!({"mobiles": ["41234567"]})),
        )
        .await;
    let token = links.body["links"][0]["token"].as_str().unwrap().to_owned();
    let r = env
        .submit(&form, URLENC, &format!("token={token}"), None, 0)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn form_stale_or_wrong_signature_gets_401_and_writes_nothing() {
    let (env, account, _, form) = setup().await;
    let stale = env
        .submit(&form, JSON, r#"{"email": "a@example.no"}"#, None, -301)
        .await;
    assert_eq!(
        (stale.status, stale.body["error"]["code"].as_str()),
        (401, Some("stale_signature"))
    );
    let wrong = TestForm {
        id: form.id.clone(),
        secret: "not-the-secret".into(),
    };
    let forged = env
        .submit(&wrong, JSON, r#"{"email": "a@example.no"}"#, None, 0)
        .await;
    assert_eq!(
        (forged.status, forged.body["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let unsigned = env
        .send(
            "POST",
            &format!("/v1/forms/{}/submissions", form.id),
            &[("content-type", JSON)],
            r#"{"email": "a@example.no"}"#,
        )
        .await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn form_replayed_delivery_id_writes_once() {
    let (env, account, _, form) = setup().await;
    let body = r#"{"email": "a@example.no", "first_name": "A"}"#;
    let first = env.submit(&form, JSON, body, Some("dlv-1"), 0).await;
    env.calls.take();
    let replay = env.submit(&form, JSON, body, Some("dlv-1"), 0).await;
    assert_eq!((replay.status, &replay.body), (200, &first.body));
    assert_eq!(env.calls.count("TransactWriteItems"), 0);
    assert_eq!(first.body["outcome"], "created");
    assert_eq!(env.contact_count(&account).await, 1);
}

#[tokio::test]
async fn form_malformed_email_gets_422_and_writes_nothing() {
    let (env, account, _, form) = setup().await;
    let r = env
        .submit(&form, URLENC, "email=not-an-email&mobile=41234567", None, 0)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("email"))
    );
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn form_consent_records_form_source_time_and_ip_and_joins_the_list() {
    let (env, _, key, form) = setup().await;
    let r = env
        .submit(
            &form,
            URLENC,
            "email=a%40example.no&email_marketing=on",
            None,
            0,
        )
        .await;
    let c = env
        .call(
            "GET",
            &format!("/v1/contacts/{}", r.body["contact_id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    let consent = &c.body["email_marketing"];
    assert_eq!(consent["status"], "opted_in");
    assert_eq!(consent["source"], format!("form:{}", form.id));
    assert_eq!(consent["evidence"], "ip=127.0.0.1");
    assert!(consent["at"].is_string());
    assert_eq!(c.body["lists"], json!(["newsletter"]));
}

#[tokio::test]
async fn form_unknown_form_gets_404() {
    let (env, _, _, form) = setup().await;
    let ghost = TestForm {
        id: "frm_nope".into(),
        secret: form.secret.clone(),
    };
    assert_eq!(env.submit(&ghost, JSON, "{}", None, 0).await.status, 404);
}
