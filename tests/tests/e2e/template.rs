//! The template is the single source of truth: every route it declares is served by the
//! runner, every function the runner hosts is declared, and the tables it creates match it.

use intake_local_runner::functions::FUNCTIONS;
use intake_local_runner::template::Template;
use intake_tests::TestEnv;

fn template() -> Template {
    Template::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
        .unwrap()
}

#[test]
fn template_declares_every_function_the_runner_hosts_and_no_other() {
    let t = template();
    let declared: Vec<&String> = t.env.keys().collect();
    for f in FUNCTIONS {
        assert!(
            declared.iter().any(|d| d == f),
            "runner hosts {f} but template.yaml does not declare it"
        );
    }
    for d in declared {
        assert!(
            FUNCTIONS.contains(&d.as_str()),
            "template.yaml declares {d} but the runner cannot host it"
        );
    }
}

#[test]
fn template_routes_match_api_contract_when_parsed() {
    let keys: Vec<String> = template().routes.iter().map(|r| r.key()).collect();
    for expected in [
        "PUT /v1/contacts",
        "POST /v1/contacts:batchUpsert",
        "GET /v1/contacts/{id}",
        "GET /v1/contacts",
        "POST /v1/accounts",
    ] {
        assert!(
            keys.contains(&expected.to_owned()),
            "missing route {expected}: {keys:?}"
        );
    }
}

#[tokio::test]
async fn runner_answers_every_template_route_when_built() {
    let env = TestEnv::new().await;
    for route in template().routes {
        let path = route.path.replace("{id}", "probe");
        let r = env.send(&route.method, &path, &[], "").await;
        assert_ne!(
            r.body["error"]["message"],
            "no such route",
            "{} is not routed",
            route.key()
        );
        assert!(r.status < 500, "{} answered {}", route.key(), r.status);
    }
}

#[tokio::test]
async fn runner_creates_tables_with_template_gsis_when_started() {
    let env = TestEnv::new().await;
    let desc = env
        .store
        .client()
        .describe_table()
        .table_name(&env.store.tables().contacts)
        .send()
        .await
        .unwrap();
    let table = desc.table.unwrap();
    let mut gsis: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name.clone())
        .collect();
    gsis.sort();
    assert_eq!(
        gsis,
        ["by-change", "by-email", "by-external-id", "by-mobile"]
    );
}

#[test]
fn openapi_describes_exactly_the_template_routes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("openapi.yaml")).unwrap()).unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, ops) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in ops.as_mapping().unwrap() {
            documented.push(format!(
                "{} {}",
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap()
            ));
        }
    }
    let mut served: Vec<String> = template().routes.iter().map(|r| r.key()).collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "openapi.yaml and template.yaml disagree"
    );
}
