//! A fake Backstage catalog backend: `GET /api/catalog/entities/by-query` over catalog YAML,
//! with the shapes a real backend (catalog-backend 4.0) returns.
//!
//! - `filter=<key>=<value>[,<key>=<value>…]` (several `filter` parameters are ORed, the
//!   conditions of one are ANDed, values compare case-insensitively; `key` alone tests that
//!   the field exists; `relations.<type>=<ref>` matches a relation).
//! - `limit=N` pages with an opaque base64 cursor: `pageInfo.nextCursor` while more follow,
//!   `prevCursor` after the first page, only `prevCursor` on the last one. The cursor carries
//!   the filter (a `filter` sent with a cursor is ignored). Without `limit` everything comes
//!   back and `pageInfo` is `{}`.
//! - Items in `metadata.uid` order; uids are random per server, so two servers list the same
//!   catalog in different orders, like two catalog instances.
//! - `relations` computed from every entity's `spec` as Backstage's processors do, in both
//!   directions (`memberOf`/`hasMember`, `childOf`/`parentOf`, `ownedBy`/`ownerOf`, and
//!   `partOf`/`hasPart` for `spec.system`), while `spec` stays as written.
//! - `fields=a.b,c` returns only those fields of each item (Backstage's projection), e.g.
//!   `fields=metadata.uid,metadata.etag` for a cheap consistency check.
//! - `metadata.etag` is a hash of the entity as served (relations included): it changes
//!   exactly when the entity does, as Backstage's does.
//! - `POST /api/catalog/entities/by-refs` with `{"entityRefs": [...], "fields"?: [...]}`
//!   answers `{"items": [...]}`, one item per ref in order, `null` for unknown refs.
//! - `Authorization: Bearer <token>` required; 401 with Backstage's error body otherwise.
//! - [`BackstageServer::cold_start`] models a freshly started backend that answers before it
//!   has processed its catalog: for the next N reads (a read is a `by-query` first page
//!   filtered on `kind=user`), users are missing ([`ColdStart`]).
//!
//! The catalog can be changed while serving ([`BackstageServer::set_user_groups`],
//! [`BackstageServer::reload_yaml`]) and made to fail ([`BackstageServer::fail_with`]).
//!
//! It also plays Backstage's auth backend ([`crate::backstage_auth`]), without credentials:
//! - `GET /api/auth/.well-known/jwks.json`: the signing keys (empty before the first token);
//! - `GET /api/auth/.well-known/openid-configuration`, pointing at that JWKS;
//! - `GET|POST /api/auth/guest/refresh?user=alice[&ent=true]`: signs `alice` in and answers
//!   in the shape of Backstage's refresh response (`backstageIdentity.token`, `identity`,
//!   `expiresInSeconds`); `ent=true` puts the ownership refs in the token;
//! - `POST /admin/rotate`: a new signing key (Backstage makes one every token lifetime).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use meshgate_control_plane::catalog::yaml_documents;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Map, Value};

use crate::backstage_auth::{AuthBackend, UserToken};
use crate::ports::{discard_body, json_response, Bound, HarnessError, Listener};
use crate::text::{query_pairs, uuid_v4};

/// The path of the query endpoint.
pub const BY_QUERY_PATH: &str = "/api/catalog/entities/by-query";
/// The path of the batch lookup endpoint.
pub const BY_REFS_PATH: &str = "/api/catalog/entities/by-refs";
/// The most bytes of a `by-refs` request body read.
const MAX_BY_REFS_BODY: u64 = 8 << 20;

/// What a freshly started backend leaves out of its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdStart {
    /// No users at all (groups still name their members).
    NoUsers,
    /// Every other user (in reference order) is missing; groups still name them.
    HalfTheUsers,
}

/// Errors of the fake catalog.
#[derive(Debug, thiserror::Error)]
pub enum BackstageError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("cannot read catalog `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog YAML is invalid")]
    Yaml {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("catalog document {position} is not an entity: {reason}")]
    NotAnEntity { position: usize, reason: String },
    #[error("the catalog has no user `{user}`")]
    UnknownUser { user: String },
}

/// How the fake fails every catalog request while set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Answer with this status and Backstage's error body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with JSON that is not a by-query page.
    WrongShape,
}

/// The directory of the sample catalog (`test-harness/catalog`).
pub fn sample_catalog_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalog")
}

/// Every `*.yaml` file directly in `dir`, in name order, joined into one multi-document text.
pub fn read_catalog_dir(dir: &Path) -> Result<String, BackstageError> {
    let read = |source| BackstageError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut text = String::new();
    for file in files {
        let body = std::fs::read_to_string(&file).map_err(|source| BackstageError::Read {
            path: file.clone(),
            source,
        })?;
        text.push_str("\n---\n");
        text.push_str(&body);
    }
    Ok(text)
}

/// The fake catalog backend; stops when dropped.
pub struct BackstageServer {
    listener: Listener,
    state: Arc<Mutex<CatalogState>>,
}

struct CatalogState {
    token: String,
    /// Entities as written, with `metadata.namespace` filled in.
    entities: Vec<Value>,
    /// `kind:namespace/name` (lowercase) → uid; kept across reloads, like re-registration.
    uids: BTreeMap<String, String>,
    rng: StdRng,
    /// Path and query of every request received, in order.
    requests: Vec<String>,
    failure: Option<Failure>,
    /// While set, reads left before the catalog is "processed".
    cold: Option<(ColdStart, usize)>,
    auth: AuthBackend,
}

impl BackstageServer {
    /// Listens on `bind` (a loopback `ip:port`, port 0 for any) and serves the catalog in
    /// `yaml` (multi-document) to requests bearing `token`.
    pub fn start(bind: &str, token: &str, yaml: &str) -> Result<BackstageServer, BackstageError> {
        let bound = Bound::new(bind)?;
        let mut state = CatalogState {
            token: token.to_owned(),
            entities: Vec::new(),
            uids: BTreeMap::new(),
            rng: StdRng::from_entropy(),
            requests: Vec::new(),
            failure: None,
            cold: None,
            auth: AuthBackend::new(&bound.url()),
        };
        state.load(yaml)?;
        let state = Arc::new(Mutex::new(state));
        let listener = {
            let state = Arc::clone(&state);
            bound.serve("backstage", move |request| handle(&state, request))?
        };
        Ok(BackstageServer { listener, state })
    }

    /// Serves the sample catalog in [`sample_catalog_dir`].
    pub fn start_sample(bind: &str, token: &str) -> Result<BackstageServer, BackstageError> {
        let yaml = read_catalog_dir(&sample_catalog_dir())?;
        BackstageServer::start(bind, token, &yaml)
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// `http://127.0.0.1:<port>`, the base URL a catalog client is given.
    pub fn url(&self) -> String {
        self.listener.url()
    }

    pub fn stop(&mut self) {
        self.listener.stop();
    }

    fn state(&self) -> MutexGuard<'_, CatalogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the whole catalog; uids of entities that remain are kept. On error the old
    /// catalog stays.
    pub fn reload_yaml(&self, yaml: &str) -> Result<(), BackstageError> {
        self.state().load(yaml)
    }

    /// Makes `user` (an entity name in namespace `default`, any letter case) a direct member of
    /// exactly `groups` (refs as in `spec.memberOf`): sets their `spec.memberOf` and removes
    /// them from every group's `spec.members`.
    pub fn set_user_groups(&self, user: &str, groups: &[&str]) -> Result<(), BackstageError> {
        let mut state = self.state();
        let user_ref = entity_ref("user", "default", user).to_lowercase();
        let Some(entity) = state
            .entities
            .iter_mut()
            .find(|entity| own_ref(entity).as_deref() == Some(user_ref.as_str()))
        else {
            return Err(BackstageError::UnknownUser {
                user: user.to_owned(),
            });
        };
        if let Some(spec) = spec_mut(entity) {
            spec.insert("memberOf".into(), json!(groups));
        }
        for group in &mut state.entities {
            if !is_kind(group, "group") {
                continue;
            }
            let namespace = namespace_of(group);
            if let Some(Value::Array(members)) =
                spec_mut(group).and_then(|spec| spec.get_mut("members"))
            {
                members.retain(|member| {
                    member
                        .as_str()
                        .and_then(|text| parse_ref(text, "user", &namespace))
                        .is_none_or(|member| member.to_lowercase() != user_ref)
                });
            }
        }
        Ok(())
    }

    /// Fails every catalog request as `failure` says, until called with `None`.
    pub fn fail_with(&self, failure: Option<Failure>) {
        self.state().failure = failure;
    }

    /// Answers the next `reads` catalog reads like a backend that has just started (see
    /// [`ColdStart`]); `reads` 0 ends it.
    pub fn cold_start(&self, mode: ColdStart, reads: usize) {
        self.state().cold = (reads > 0).then_some((mode, reads));
    }

    /// Path and query of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// The entities as served (relations computed, uid order), as one unpaged query returns.
    pub fn served_entities(&self) -> Vec<Value> {
        self.state().processed()
    }

    /// `{url}/api/auth`, the `iss` of the user tokens this backend issues.
    pub fn issuer(&self) -> String {
        self.state().auth.issuer().to_owned()
    }

    /// A user token signed by the auth backend's current key (the first one is made now if
    /// there is none yet, as Backstage does).
    pub fn issue_token(&self, req: &UserToken) -> String {
        self.state().auth.issue(req)
    }

    /// A plugin token (`vnd.backstage.plugin`) from `plugin` to `target`, signed with the
    /// plugin's own key, which the auth JWKS does not list.
    pub fn plugin_token(&self, plugin: &str, target: &str, now: i64) -> String {
        self.state().auth.plugin_token(plugin, target, now)
    }

    /// A new signing key, published at once; returns its kid.
    pub fn rotate_key(&self) -> String {
        self.state().auth.rotate()
    }

    /// Requests to the JWKS so far.
    pub fn jwks_requests(&self) -> u64 {
        self.state().auth.jwks_requests()
    }

    /// Backstage's ownership refs for `user` (a name in namespace `default`, or a user ref):
    /// the user's ref and the groups they are a direct member of, as the sign-in resolver puts
    /// them in `ent`. `None` when the catalog has no such user.
    pub fn ownership_refs(&self, user: &str) -> Option<Vec<String>> {
        self.state().ownership_refs(user)
    }
}

impl CatalogState {
    /// The user's own ref and their direct groups (`memberOf` relations), lowercased.
    fn ownership_refs(&mut self, user: &str) -> Option<Vec<String>> {
        let user_ref = parse_ref(user, "user", "default")?.to_lowercase();
        let entity = self
            .processed()
            .into_iter()
            .find(|entity| own_ref(entity).as_deref() == Some(user_ref.as_str()))?;
        let mut refs = vec![user_ref];
        let relations = entity.get("relations").and_then(Value::as_array);
        let mut groups: Vec<String> = relations
            .into_iter()
            .flatten()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("memberOf"))
            .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
            .map(str::to_lowercase)
            .collect();
        groups.sort();
        groups.dedup();
        refs.extend(groups);
        Some(refs)
    }

    fn load(&mut self, yaml: &str) -> Result<(), BackstageError> {
        let documents = yaml_documents(yaml).map_err(|source| BackstageError::Yaml {
            source: Box::new(source),
        })?;
        let mut entities = Vec::with_capacity(documents.len());
        for (position, mut document) in documents {
            let not_entity = |reason: &str| BackstageError::NotAnEntity {
                position,
                reason: reason.to_owned(),
            };
            let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut) else {
                return Err(not_entity("no `metadata` mapping"));
            };
            if !metadata.get("name").is_some_and(Value::is_string) {
                return Err(not_entity("no string `metadata.name`"));
            }
            metadata
                .entry("namespace")
                .or_insert_with(|| Value::from("default"));
            if own_ref(&document).is_none() {
                return Err(not_entity("no string `kind`"));
            }
            entities.push(document);
        }
        for entity in &entities {
            if let Some(reference) = own_ref(entity) {
                if !self.uids.contains_key(&reference) {
                    let uid = random_uid(&mut self.rng);
                    self.uids.insert(reference, uid);
                }
            }
        }
        self.entities = entities;
        Ok(())
    }

    /// Every entity as the backend returns it: uid and etag set, relations computed from all
    /// specs and attached to their source entity, ordered by uid.
    fn processed(&mut self) -> Vec<Value> {
        let mut relations: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for entity in &self.entities {
            for (source, relation, target) in emitted_relations(entity) {
                let list = relations.entry(source.to_lowercase()).or_default();
                let duplicate = list.iter().any(|(have_type, have_target)| {
                    *have_type == relation && have_target.eq_ignore_ascii_case(&target)
                });
                if !duplicate {
                    list.push((relation, target));
                }
            }
        }
        let mut served: Vec<(String, Value)> = Vec::with_capacity(self.entities.len());
        for entity in &self.entities {
            let Some(reference) = own_ref(entity) else {
                continue;
            };
            let uid = self.uids.get(&reference).cloned().unwrap_or_default();
            let mut entity = entity.clone();
            let mut list: Vec<Value> = relations
                .get(&reference)
                .into_iter()
                .flatten()
                .map(|(relation, target)| json!({"type": relation, "targetRef": target}))
                .collect();
            // The etag follows the content (relations in a fixed order), not the shuffle.
            let etag = content_etag(&entity, &list);
            if let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("uid".into(), Value::from(uid.as_str()));
                metadata.insert("etag".into(), Value::from(etag));
            }
            list.shuffle(&mut self.rng);
            if let Some(object) = entity.as_object_mut() {
                object.insert("relations".into(), Value::Array(list));
            }
            served.push((uid, entity));
        }
        served.sort_by(|a, b| a.0.cmp(&b.0));
        served.into_iter().map(|(_, entity)| entity).collect()
    }
}

/// A hash of the entity as written and its relations, hex.
fn content_etag(entity: &Value, relations: &[Value]) -> String {
    let mut hasher = DefaultHasher::new();
    entity.to_string().hash(&mut hasher);
    let mut texts: Vec<String> = relations.iter().map(Value::to_string).collect();
    texts.sort();
    texts.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl CatalogState {
    /// The processed entities a backend in its current state serves, and whether this request
    /// counts as one read of a cold-started backend.
    fn visible(&mut self, counts_as_read: bool) -> Vec<Value> {
        let mut entities = self.processed();
        let Some((mode, left)) = self.cold else {
            return entities;
        };
        let is_user = |entity: &Value| is_kind(entity, "user");
        match mode {
            ColdStart::NoUsers => entities.retain(|entity| !is_user(entity)),
            ColdStart::HalfTheUsers => {
                let mut users: Vec<String> = entities
                    .iter()
                    .filter(|entity| is_user(entity))
                    .filter_map(own_ref)
                    .collect();
                users.sort();
                let dropped: BTreeSet<String> = users.into_iter().step_by(2).collect();
                entities.retain(|entity| own_ref(entity).is_none_or(|r| !dropped.contains(&r)));
            }
        }
        if counts_as_read {
            self.cold = (left > 1).then_some((mode, left - 1));
        }
        entities
    }
}

/// A random `metadata.uid`: a version-4 UUID, as Backstage gives entities.
fn random_uid(rng: &mut StdRng) -> String {
    uuid_v4(rng.gen())
}

/// `kind:namespace/name` the way Backstage's `stringifyEntityRef` writes it: kind and namespace
/// lowercased, the name as written.
fn entity_ref(kind: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}:{}/{name}",
        kind.to_lowercase(),
        namespace.to_lowercase()
    )
}

fn namespace_of(entity: &Value) -> String {
    entity
        .get("metadata")
        .and_then(|metadata| metadata.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned()
}

fn is_kind(entity: &Value, kind: &str) -> bool {
    entity
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|have| have.eq_ignore_ascii_case(kind))
}

/// The entity's own ref, lowercased (for keys and comparisons).
fn own_ref(entity: &Value) -> Option<String> {
    let kind = entity.get("kind").and_then(Value::as_str)?;
    let name = entity
        .get("metadata")?
        .get("name")
        .and_then(Value::as_str)?;
    Some(entity_ref(kind, &namespace_of(entity), name).to_lowercase())
}

fn spec_mut(entity: &mut Value) -> Option<&mut Map<String, Value>> {
    let object = entity.as_object_mut()?;
    object
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// Backstage's `parseEntityRef` with defaults, stringified; `None` for unreadable refs.
fn parse_ref(text: &str, default_kind: &str, default_namespace: &str) -> Option<String> {
    let colon = text.find(':');
    let slash = text.find('/');
    let (kind, rest) = match (colon, slash) {
        (Some(colon), Some(slash)) if slash < colon => (default_kind, text),
        (Some(_), _) => text.split_once(':')?,
        (None, _) => (default_kind, text),
    };
    let (namespace, name) = rest.split_once('/').unwrap_or((default_namespace, rest));
    if kind.is_empty() || namespace.is_empty() || name.is_empty() {
        return None;
    }
    Some(entity_ref(kind, namespace, name))
}

/// `(source, type, target)` for every relation `entity`'s spec produces, both directions.
fn emitted_relations(entity: &Value) -> Vec<(String, String, String)> {
    let Some(kind) = entity.get("kind").and_then(Value::as_str) else {
        return Vec::new();
    };
    let Some(name) = entity
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
    else {
        return Vec::new();
    };
    let namespace = namespace_of(entity);
    let me = entity_ref(kind, &namespace, name);
    let spec = entity.get("spec");
    let strings = |field: &str| -> Vec<String> {
        match spec.and_then(|spec| spec.get(field)) {
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    // (field, implied kind, relation from me, inverse relation)
    let fields: &[(&str, &str, &str, &str)] = match kind.to_lowercase().as_str() {
        "user" => &[("memberOf", "group", "memberOf", "hasMember")],
        "group" => &[
            ("parent", "group", "childOf", "parentOf"),
            ("children", "group", "parentOf", "childOf"),
            ("members", "user", "hasMember", "memberOf"),
        ],
        "component" | "api" | "resource" | "system" | "domain" | "template" => &[
            ("owner", "group", "ownedBy", "ownerOf"),
            ("system", "system", "partOf", "hasPart"),
        ],
        _ => &[],
    };
    let mut relations = Vec::new();
    for (field, implied, forward, inverse) in fields {
        for text in strings(field) {
            if let Some(target) = parse_ref(&text, implied, &namespace) {
                relations.push((me.clone(), (*forward).to_owned(), target.clone()));
                relations.push((target, (*inverse).to_owned(), me.clone()));
            }
        }
    }
    relations
}

/// What a by-query request asked for.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    filters: Vec<String>,
    offset: usize,
    limit: usize,
    #[serde(rename = "totalItems")]
    total_items: usize,
}

fn handle(state: &Arc<Mutex<CatalogState>>, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    // A body that cannot be read is answered as an empty one (400 for by-refs).
    let _ = request
        .as_reader()
        .take(MAX_BY_REFS_BODY)
        .read_to_end(&mut body);
    discard_body(&mut request);
    let url = request.url().to_owned();
    let (status, body) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requests.push(url.clone());
        answer(&mut state, request.method(), &url, request.headers(), &body)
    };
    let response = match body {
        Answer::Json(body) => json_response(status, &body, None),
        Answer::Raw(text) => {
            tiny_http::Response::from_data(text.into_bytes()).with_status_code(status)
        }
    };
    // The client may have gone away; there is nobody left to tell.
    let _ = request.respond(response);
}

enum Answer {
    Json(Value),
    Raw(String),
}

fn error_body(status: u16, name: &str, message: &str, method: &str, url: &str) -> Answer {
    Answer::Json(json!({
        "error": {"name": name, "message": message},
        "request": {"method": method, "url": url},
        "response": {"statusCode": status},
    }))
}

fn answer(
    state: &mut CatalogState,
    method: &tiny_http::Method,
    url: &str,
    headers: &[tiny_http::Header],
    body: &[u8],
) -> (u16, Answer) {
    let method = method.as_str();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some(answer) = auth_answer(state, method, path, query, url) {
        return answer;
    }
    let expected = format!("Bearer {}", state.token);
    let authorized = headers
        .iter()
        .any(|header| header.field.equiv("Authorization") && header.value.as_str() == expected);
    if !authorized {
        let message = "Missing credentials";
        return (
            401,
            error_body(401, "AuthenticationError", message, method, url),
        );
    }
    let known =
        (path == BY_QUERY_PATH && method == "GET") || (path == BY_REFS_PATH && method == "POST");
    if !known {
        let message = format!("No route for {method} {path}");
        return (404, error_body(404, "NotFoundError", &message, method, url));
    }
    match &state.failure {
        Some(Failure::Status(status)) => {
            let status = *status;
            return (
                status,
                error_body(status, "Error", "catalog failing on purpose", method, url),
            );
        }
        Some(Failure::Garbage) => {
            return (
                200,
                Answer::Raw("<html><body>upstream connect error".into()),
            );
        }
        Some(Failure::WrongShape) => {
            return (200, Answer::Json(json!({"entities": []})));
        }
        None => {}
    }
    let bad = |message: &str| (400, error_body(400, "InputError", message, method, url));
    if path == BY_REFS_PATH {
        return match by_refs(state, body) {
            Ok(answer) => (200, Answer::Json(answer)),
            Err(message) => bad(message),
        };
    }
    let params = query_pairs(query);
    let fields: Vec<String> = params
        .iter()
        .filter(|(key, _)| key == "fields")
        .flat_map(|(_, value)| value.split(','))
        .map(|field| field.trim().to_owned())
        .filter(|field| !field.is_empty())
        .collect();
    let limit = match params.iter().find(|(key, _)| key == "limit") {
        None => None,
        Some((_, value)) => match value.parse::<usize>() {
            Ok(limit) => Some(limit),
            Err(_) => return bad("Invalid limit, not a number"),
        },
    };
    let cursor = match params.iter().find(|(key, _)| key == "cursor") {
        None => None,
        Some((_, value)) => match decode_cursor(value) {
            Some(cursor) => Some(cursor),
            None => return bad("Malformed cursor, could not be parsed"),
        },
    };
    let (filters, offset, limit) = match cursor {
        Some(cursor) => (
            cursor.filters,
            cursor.offset,
            Some(limit.unwrap_or(cursor.limit)),
        ),
        None => (
            params
                .iter()
                .filter(|(key, _)| key == "filter")
                .map(|(_, value)| value.clone())
                .collect(),
            0,
            limit,
        ),
    };
    let first_user_page = !params.iter().any(|(key, _)| key == "cursor")
        && filters
            .iter()
            .any(|filter| filter.eq_ignore_ascii_case("kind=user"));
    let matched: Vec<Value> = state
        .visible(first_user_page)
        .into_iter()
        .filter(|entity| matches_filters(entity, &filters))
        .map(|entity| project(entity, &fields))
        .collect();
    let total = matched.len();
    let Some(limit) = limit else {
        return (
            200,
            Answer::Json(json!({"items": matched, "totalItems": total, "pageInfo": {}})),
        );
    };
    let items: Vec<Value> = matched.into_iter().skip(offset).take(limit).collect();
    let cursor_at = |offset: usize| {
        encode_cursor(&Cursor {
            filters: filters.clone(),
            offset,
            limit,
            total_items: total,
        })
    };
    let mut page_info = Map::new();
    if offset.saturating_add(limit) < total {
        page_info.insert("nextCursor".into(), Value::from(cursor_at(offset + limit)));
    }
    if offset > 0 {
        page_info.insert(
            "prevCursor".into(),
            Value::from(cursor_at(offset.saturating_sub(limit))),
        );
    }
    (
        200,
        Answer::Json(json!({"items": items, "totalItems": total, "pageInfo": page_info})),
    )
}

/// The auth backend's routes (no credentials needed), or `None` for other paths.
fn auth_answer(
    state: &mut CatalogState,
    method: &str,
    path: &str,
    query: &str,
    url: &str,
) -> Option<(u16, Answer)> {
    let now = meshgate_test_support::unix_now();
    let answer = match (method, path) {
        ("GET", "/api/auth/.well-known/jwks.json") => {
            state.auth.count_jwks_request();
            (200, Answer::Json(state.auth.jwks()))
        }
        ("GET", "/api/auth/.well-known/openid-configuration") => {
            (200, Answer::Json(state.auth.openid_configuration()))
        }
        ("GET" | "POST", "/api/auth/guest/refresh") => {
            let params = query_pairs(query);
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            };
            let user = param("user").unwrap_or_else(|| String::from("guest"));
            let Some(refs) = state.ownership_refs(&user) else {
                let message =
                    format!("Failed to sign-in, unable to resolve user identity `{user}`");
                return Some((
                    401,
                    error_body(401, "AuthenticationError", &message, method, url),
                ));
            };
            let user_ref = refs.first().cloned().unwrap_or_default();
            let mut req = UserToken::new(user_ref.as_str(), now);
            if param("ent").is_some_and(|v| v == "true") {
                req.ent = Some(refs.clone());
            }
            let token = state.auth.issue(&req);
            (
                200,
                Answer::Json(refresh_response(state, &user_ref, &refs, token)),
            )
        }
        ("POST", "/admin/rotate") => (200, Answer::Json(json!({"kid": state.auth.rotate()}))),
        _ => return None,
    };
    Some(answer)
}

/// Backstage's `/api/auth/<provider>/refresh` answer.
fn refresh_response(state: &CatalogState, user_ref: &str, refs: &[String], token: String) -> Value {
    let profile = state
        .entities
        .iter()
        .find(|entity| own_ref(entity).as_deref() == Some(user_ref))
        .and_then(|entity| entity.get("spec")?.get("profile").cloned())
        .unwrap_or_else(|| json!({}));
    json!({
        "profile": profile,
        "providerInfo": {},
        "backstageIdentity": {
            "token": token,
            "expiresInSeconds": crate::backstage_auth::TOKEN_LIFETIME_S - 1,
            "identity": {
                "type": "user",
                "userEntityRef": user_ref,
                "ownershipEntityRefs": refs,
            },
        },
    })
}

/// `POST by-refs`: one item per requested ref, in order, `null` when unknown.
fn by_refs(state: &mut CatalogState, body: &[u8]) -> Result<Value, &'static str> {
    let request: Value =
        serde_json::from_slice(body).map_err(|_| "Malformed request body, not JSON")?;
    let refs = request
        .get("entityRefs")
        .and_then(Value::as_array)
        .ok_or("Missing entityRefs array")?;
    let fields: Vec<String> = match request.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(fields)) => fields
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err("fields must be an array"),
    };
    let entities = state.visible(false);
    let by_ref: BTreeMap<String, &Value> = entities
        .iter()
        .filter_map(|entity| own_ref(entity).map(|r| (r, entity)))
        .collect();
    let items: Vec<Value> = refs
        .iter()
        .map(|wanted| {
            wanted
                .as_str()
                .and_then(|wanted| by_ref.get(&wanted.to_lowercase()))
                .map_or(Value::Null, |entity| project((*entity).clone(), &fields))
        })
        .collect();
    Ok(json!({"items": items}))
}

/// Only `fields` (dotted paths) of `entity`; all of it when `fields` is empty.
fn project(entity: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return entity;
    }
    let mut out = Value::Object(Map::new());
    for field in fields {
        let mut source = Some(&entity);
        for segment in field.split('.') {
            source = source.and_then(|value| value.get(segment));
        }
        let Some(found) = source else {
            continue;
        };
        let mut target = &mut out;
        let segments: Vec<&str> = field.split('.').collect();
        for (position, segment) in segments.iter().enumerate() {
            let Some(object) = target.as_object_mut() else {
                break;
            };
            if position + 1 == segments.len() {
                object.insert((*segment).to_owned(), found.clone());
                break;
            }
            target = object
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

fn encode_cursor(cursor: &Cursor) -> String {
    STANDARD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(text: &str) -> Option<Cursor> {
    let bytes = STANDARD.decode(text).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `entity` matches any of `filters` (all when there are none).
fn matches_filters(entity: &Value, filters: &[String]) -> bool {
    filters.is_empty()
        || filters.iter().any(|filter| {
            filter
                .split(',')
                .all(|condition| matches_condition(entity, condition.trim()))
        })
}

fn matches_condition(entity: &Value, condition: &str) -> bool {
    let (key, wanted) = match condition.split_once('=') {
        Some((key, value)) => (key.trim(), Some(value.trim())),
        None => (condition, None),
    };
    if let Some(relation) = key.strip_prefix("relations.") {
        let relations = entity.get("relations").and_then(Value::as_array);
        return relations.into_iter().flatten().any(|item| {
            let type_matches = item
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|have| have.eq_ignore_ascii_case(relation));
            let target = item.get("targetRef").and_then(Value::as_str);
            type_matches
                && wanted.is_none_or(|wanted| {
                    target.is_some_and(|target| target.eq_ignore_ascii_case(wanted))
                })
        });
    }
    let mut current = Some(entity);
    for segment in key.split('.') {
        current = current
            .and_then(Value::as_object)
            .and_then(|object| {
                object
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(segment))
            })
            .map(|(_, value)| value);
    }
    let Some(found) = current else {
        return false;
    };
    let Some(wanted) = wanted else {
        return true;
    };
    let equals = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .or_else(|| (value.is_number() || value.is_boolean()).then(|| value.to_string()))
            .is_some_and(|text| text.eq_ignore_ascii_case(wanted))
    };
    match found {
        Value::Array(items) => items.iter().any(equals),
        other => equals(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse_like_backstage() {
        assert_eq!(
            parse_ref("Data-Eng", "group", "default").as_deref(),
            Some("group:default/Data-Eng")
        );
        assert_eq!(
            parse_ref("User:Ops/Dave", "group", "default").as_deref(),
            Some("user:ops/Dave")
        );
        assert_eq!(
            parse_ref("a/b:c", "group", "x").as_deref(),
            Some("group:a/b:c")
        );
        assert_eq!(parse_ref("user:", "group", "x"), None);
    }

    #[test]
    fn queries_decode_and_filters_match() {
        let entity = json!({"kind": "User", "metadata": {"name": "bob", "tags": ["x"]},
            "relations": [{"type": "memberOf", "targetRef": "group:default/analytics"}]});
        assert!(matches_filters(&entity, &["kind=user".into()]));
        assert!(matches_filters(
            &entity,
            &["kind=group".into(), "metadata.name=BOB".into()]
        ));
        assert!(!matches_filters(
            &entity,
            &["kind=user,metadata.name=alice".into()]
        ));
        assert!(matches_filters(&entity, &["metadata.tags=x".into()]));
        assert!(matches_filters(&entity, &["metadata.tags".into()]));
        assert!(!matches_filters(&entity, &["spec".into()]));
        assert!(matches_filters(
            &entity,
            &["relations.memberof=group:default/Analytics".into()]
        ));
    }

    #[test]
    fn fields_project_dotted_paths() {
        let entity = json!({"kind": "User", "metadata": {"name": "bob", "uid": "u1", "etag": "e1"},
            "spec": {"profile": {"email": "b@x"}}});
        let fields = |list: &[&str]| list.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            project(entity.clone(), &fields(&["metadata.uid", "metadata.etag"])),
            json!({"metadata": {"uid": "u1", "etag": "e1"}})
        );
        assert_eq!(
            project(
                entity.clone(),
                &fields(&["kind", "spec.profile.email", "no.such"])
            ),
            json!({"kind": "User", "spec": {"profile": {"email": "b@x"}}})
        );
        assert_eq!(project(entity.clone(), &[]), entity);
    }

    #[test]
    fn etags_follow_content_not_order() {
        let entity = json!({"kind": "Group", "metadata": {"name": "g"}});
        let a = json!({"type": "hasMember", "targetRef": "user:default/a"});
        let b = json!({"type": "hasMember", "targetRef": "user:default/b"});
        let etag = content_etag(&entity, &[a.clone(), b.clone()]);
        assert_eq!(content_etag(&entity, &[b.clone(), a.clone()]), etag);
        assert_ne!(content_etag(&entity, &[a]), etag);
        assert_ne!(
            content_etag(&json!({"kind": "Group", "metadata": {"name": "h"}}), &[]),
            content_etag(&entity, &[])
        );
    }

    #[test]
    fn relations_are_emitted_in_both_directions() {
        let group = json!({"kind": "Group", "metadata": {"name": "analytics", "namespace": "default"},
            "spec": {"parent": "Data-Eng", "members": ["bob"], "children": []}});
        let relations = emitted_relations(&group);
        assert_eq!(
            relations,
            [
                (
                    "group:default/analytics".into(),
                    "childOf".into(),
                    "group:default/Data-Eng".into()
                ),
                (
                    "group:default/Data-Eng".into(),
                    "parentOf".into(),
                    "group:default/analytics".into()
                ),
                (
                    "group:default/analytics".into(),
                    "hasMember".into(),
                    "user:default/bob".into()
                ),
                (
                    "user:default/bob".into(),
                    "memberOf".into(),
                    "group:default/analytics".into()
                ),
            ]
        );
    }
}
