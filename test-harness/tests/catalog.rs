//! The control plane's catalog sources against the fake Backstage backend and the sample
//! catalog: paging, auth and failure handling of the REST source, and agreement between the
//! REST and YAML-directory sources.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use meshgate_control_plane::catalog::{
    load_dir, to_snapshot_input, CatalogError, CatalogIndex, RestSource, SnapshotInput,
};
use meshgate_core::snapshot::{encode, SigningKey};
use meshgate_test_harness::backstage::{
    sample_catalog_dir, BackstageServer, Failure, BY_QUERY_PATH,
};
use serde_json::Value;

const TOKEN: &str = "catalog-test-token";

fn server() -> BackstageServer {
    BackstageServer::start_sample("127.0.0.1:0", TOKEN).unwrap()
}

fn source(server: &BackstageServer) -> RestSource {
    RestSource::new(server.url()).with_token(TOKEN)
}

fn snapshot(index: &CatalogIndex) -> SnapshotInput {
    let (input, warnings) = to_snapshot_input(index);
    assert!(warnings.is_empty(), "{warnings:#?}");
    input
}

/// The user's closed groups: their direct groups (snapshot format 2) and the ancestors of
/// each, as the filter unions them.
fn groups_of(input: &SnapshotInput, user: &str) -> Vec<String> {
    let direct = &input
        .users
        .iter()
        .find(|u| u.entity_ref == user)
        .unwrap_or_else(|| panic!("no {user}"))
        .groups;
    let mut closed: std::collections::BTreeSet<String> = direct.iter().cloned().collect();
    for group in direct {
        if let Some(found) = input.groups.iter().find(|g| &g.entity_ref == group) {
            closed.extend(found.ancestors.iter().cloned());
        }
    }
    closed.into_iter().collect()
}

fn get(server: &BackstageServer, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = ureq::get(&format!("{}{BY_QUERY_PATH}?{query}", server.url()));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(response) => (response.status(), response.into_json().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_json().unwrap()),
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn sample_catalog_closes_groups_and_maps_ownership() {
    let server = server();
    let input = snapshot(&source(&server).load().unwrap());
    let users: Vec<(&str, Option<&str>)> = input
        .users
        .iter()
        .map(|u| (u.entity_ref.as_str(), u.email.as_deref()))
        .collect();
    assert_eq!(
        users,
        [
            ("user:default/alice", Some("alice@example.com")),
            ("user:default/bob", Some("bob@example.com")),
            ("user:default/carol", Some("carol@example.com")),
            ("user:default/dave", Some("dave@example.com")),
            ("user:default/erin", Some("erin@example.com")),
        ]
    );
    // bob is only listed in analytics' spec.members, and analytics only names data-eng as
    // its parent: both facts come through relations.
    assert_eq!(
        groups_of(&input, "user:default/bob"),
        ["group:default/analytics", "group:default/data-eng"]
    );
    assert_eq!(
        groups_of(&input, "user:default/alice"),
        ["group:default/data-eng"]
    );
    assert_eq!(
        groups_of(&input, "user:default/carol"),
        ["group:default/ci-admins"]
    );
    assert_eq!(
        groups_of(&input, "user:default/dave"),
        ["group:default/platform-team"]
    );
    assert!(groups_of(&input, "user:default/erin").is_empty());
    let owned: Vec<(&str, &str, Vec<&str>)> = input
        .owned
        .iter()
        .map(|o| {
            (
                o.kind.as_str(),
                o.id.as_str(),
                o.owners.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        owned,
        [
            (
                "airbyte.connection",
                "9f1c0a7e-0000-4000-8000-000000000001",
                vec!["group:default/data-eng"]
            ),
            ("airflow.dag", "etl_daily", vec!["group:default/data-eng"]),
            (
                "airflow.dag",
                "marketing_report",
                vec!["group:default/analytics"]
            ),
            (
                "buildkite.pipeline",
                "acme/deploy",
                vec!["group:default/ci-admins"]
            ),
            (
                "service.host",
                "orders.svc.internal",
                vec!["group:default/platform-team"]
            ),
        ]
    );
}

#[test]
fn rest_and_yaml_directory_sources_agree() {
    let server = server();
    let from_rest = snapshot(&source(&server).load().unwrap());
    let from_yaml = snapshot(&load_dir(&sample_catalog_dir()).unwrap());
    assert_eq!(from_rest, from_yaml);
}

#[test]
fn small_pages_follow_cursors_without_resending_the_filter() {
    let server = server();
    let unpaged = source(&server).with_page_size(1000).load().unwrap();
    let before = server.requests().len();
    let paged = source(&server).with_page_size(2).load().unwrap();
    assert_eq!(paged, unpaged);
    assert_eq!(snapshot(&paged), snapshot(&unpaged));

    let requests: Vec<String> = server.requests().split_off(before);
    // 5 users, 4 groups, 4 components, 1 resource, 1 system at 2 per page.
    assert_eq!(requests.len(), 3 + 2 + 2 + 1 + 1, "{requests:#?}");
    for request in &requests {
        assert!(request.contains("limit=2"), "{request}");
        let with_cursor = request.contains("cursor=");
        assert_ne!(with_cursor, request.contains("filter="), "{request}");
    }
    assert_eq!(requests.iter().filter(|r| r.contains("filter=")).count(), 5);
}

#[test]
fn wire_shapes_match_a_real_backend() {
    let server = server();
    let (status, all) = get(&server, "filter=kind=user", Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(all["pageInfo"], serde_json::json!({}));
    assert_eq!(all["totalItems"], 5);

    let (_, first) = get(&server, "filter=kind=user&limit=2", Some(TOKEN));
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert!(first["pageInfo"].get("prevCursor").is_none());
    let mut cursor = first["pageInfo"]["nextCursor"].as_str().unwrap().to_owned();
    let mut names: Vec<String> = Vec::new();
    loop {
        let query = format!(
            "cursor={}&limit=2",
            cursor
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        let (_, page) = get(&server, &query, Some(TOKEN));
        assert!(page["pageInfo"]["prevCursor"].is_string());
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match page["pageInfo"]["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(names.len(), 3);

    // Items carry uid and relations; spec stays as written.
    let bob = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["metadata"]["name"] == "bob")
        .unwrap();
    assert!(bob["metadata"]["uid"].is_string());
    assert_eq!(bob["spec"]["memberOf"], serde_json::json!([]));
    assert_eq!(
        bob["relations"],
        serde_json::json!([{"type": "memberOf", "targetRef": "group:default/analytics"}])
    );
    let uids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["uid"].as_str().unwrap())
        .collect();
    let mut sorted = uids.clone();
    sorted.sort_unstable();
    assert_eq!(uids, sorted);

    let (status, body) = get(&server, "filter=kind=user", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["name"], "AuthenticationError");
}

#[test]
fn replicas_list_in_different_orders_but_agree() {
    let one = server();
    let two = server();
    let order = |server: &BackstageServer| -> Vec<String> {
        let (entities, _) = source(server).fetch_entities().unwrap();
        entities
            .iter()
            .map(|entity| entity.entity_ref.to_string())
            .collect()
    };
    // 5! · 4! · 4! orders of users, groups and components: a tie is all but impossible.
    assert_ne!(order(&one), order(&two));
    let (first, second) = (
        snapshot(&source(&one).load().unwrap()),
        snapshot(&source(&two).load().unwrap()),
    );
    assert_eq!(first, second);
    // What replicas publish is byte-identical.
    let key = SigningKey::from_seed("catalog-test", [7; 32]).unwrap();
    assert_eq!(
        encode(&first, 1, 1_700_000_000, &key).unwrap(),
        encode(&second, 1, 1_700_000_000, &key).unwrap()
    );
}

#[test]
fn missing_or_wrong_token_is_unauthorized() {
    let server = server();
    let without = RestSource::new(server.url()).load();
    assert!(
        matches!(without, Err(CatalogError::Unauthorized { status: 401, .. })),
        "{without:?}"
    );
    let wrong = RestSource::new(server.url()).with_token("nope").load();
    assert!(
        matches!(wrong, Err(CatalogError::Unauthorized { status: 401, .. })),
        "{wrong:?}"
    );
}

#[test]
fn failures_are_typed_errors() {
    let mut server = server();
    server.fail_with(Some(Failure::Garbage));
    let garbage = source(&server).load();
    assert!(
        matches!(garbage, Err(CatalogError::Decode { .. })),
        "{garbage:?}"
    );
    server.fail_with(Some(Failure::WrongShape));
    let shape = source(&server).load();
    assert!(
        matches!(shape, Err(CatalogError::Decode { .. })),
        "{shape:?}"
    );
    server.fail_with(Some(Failure::Status(503)));
    let unavailable = source(&server).load();
    assert!(
        matches!(
            unavailable,
            Err(CatalogError::Status { status: 503, ref body, .. }) if body.contains("failing on purpose")
        ),
        "{unavailable:?}"
    );
    server.fail_with(None);
    assert!(source(&server).load().is_ok());

    let rest = source(&server);
    server.stop();
    let unreachable = rest.load();
    assert!(
        matches!(unreachable, Err(CatalogError::Transport { .. })),
        "{unreachable:?}"
    );
}

#[test]
fn catalog_edits_show_up_on_the_next_read() {
    let server = server();
    server.set_user_groups("Bob", &["ci-admins"]).unwrap();
    let input = snapshot(&source(&server).load().unwrap());
    assert_eq!(
        groups_of(&input, "user:default/bob"),
        ["group:default/ci-admins"]
    );
    assert!(server.set_user_groups("nobody", &[]).is_err());

    server
        .reload_yaml(
            "kind: Group\nmetadata: {name: solo}\nspec: {type: team, children: []}\n---\n\
             kind: User\nmetadata: {name: zed}\nspec: {memberOf: [solo]}\n",
        )
        .unwrap();
    let input = snapshot(&source(&server).load().unwrap());
    assert_eq!(input.users.len(), 1);
    assert_eq!(
        groups_of(&input, "user:default/zed"),
        ["group:default/solo"]
    );
    assert!(input.owned.is_empty());
    assert!(server.reload_yaml("kind: [").is_err());
    assert_eq!(snapshot(&source(&server).load().unwrap()), input);
}
