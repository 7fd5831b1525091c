//! Catalog source: a running Backstage backend's REST API.
//!
//! For each kind, `GET {base}/api/catalog/entities/by-query?filter=kind=<kind>&limit=<n>`,
//! then `?cursor=<pageInfo.nextCursor>&limit=<n>` until a page has no `nextCursor` (the cursor
//! carries the filter, so it is not sent again). Memberships, hierarchy and ownership are read
//! from each entity's `relations`, which the backend computed from every entity's `spec`;
//! `spec` itself is left as written and is not consulted for them. The backend returns items
//! in `uid` order, which differs between catalog instances; [`CatalogIndex`] sorts.
//!
//! `https://` URLs are served by rustls with the roots of [`super::tls::client_config`]: the
//! public webpki roots, plus a private CA bundle given with [`RestSource::with_ca_bundle`].

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Read as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::error::CatalogError;
use super::index::CatalogIndex;
use super::model::{Entity, LocatedEntities, RelationSource};
use super::tls::{client_config, CaBundle};
use super::warning::CatalogWarning;

/// Kinds read by default: people, teams, and the kinds that own tool resources.
pub const DEFAULT_KINDS: &[&str] = &["user", "group", "component", "resource", "system"];

/// Entities per page by default.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// Per-request timeout by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes read from one page.
const MAX_PAGE_BYTES: u64 = 64 << 20;

/// The most bytes of an error response kept in [`CatalogError::Status`].
const MAX_ERROR_BODY: usize = 512;

/// Where and how to read a Backstage catalog.
#[derive(Clone)]
pub struct RestSource {
    base_url: String,
    token: Option<String>,
    page_size: usize,
    kinds: Vec<String>,
    timeout: Duration,
    ca_bundle: Option<CaBundle>,
}

impl std::fmt::Debug for RestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSource")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("page_size", &self.page_size)
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// One page of `by-query`.
#[derive(Deserialize)]
struct Page {
    items: Vec<Value>,
    #[serde(rename = "pageInfo", default)]
    page_info: PageInfo,
}

#[derive(Deserialize, Default)]
struct PageInfo {
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

impl RestSource {
    /// A source for the Backstage backend at `base_url` (`https://backstage.example.com`, the
    /// part before `/api/catalog`), with no token, [`DEFAULT_KINDS`], [`DEFAULT_PAGE_SIZE`] and
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(base_url: impl Into<String>) -> RestSource {
        RestSource {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: None,
            page_size: DEFAULT_PAGE_SIZE,
            kinds: DEFAULT_KINDS
                .iter()
                .map(|kind| (*kind).to_owned())
                .collect(),
            timeout: DEFAULT_TIMEOUT,
            ca_bundle: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` (a Backstage static token or service token).
    pub fn with_token(mut self, token: impl Into<String>) -> RestSource {
        self.token = Some(token.into());
        self
    }

    /// Entities per page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> RestSource {
        self.page_size = page_size.max(1);
        self
    }

    /// The kinds to read, instead of [`DEFAULT_KINDS`].
    pub fn with_kinds<I, S>(mut self, kinds: I) -> RestSource
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    /// Timeout of each request (connect and read).
    pub fn with_timeout(mut self, timeout: Duration) -> RestSource {
        self.timeout = timeout;
        self
    }

    /// Also trusts the certificates of `bundle` (a private CA) for an `https://` URL.
    pub fn with_ca_bundle(mut self, bundle: CaBundle) -> RestSource {
        self.ca_bundle = Some(bundle);
        self
    }

    /// `{base}/api/catalog/entities/by-query`.
    pub fn query_url(&self) -> String {
        format!("{}/api/catalog/entities/by-query", self.base_url)
    }

    /// Reads every entity of the configured kinds into an index. Any failed request fails the
    /// whole read: a partial catalog would silently drop memberships.
    pub fn load(&self) -> Result<CatalogIndex, CatalogError> {
        let (entities, warnings) = self.fetch_located()?;
        Ok(CatalogIndex::from_located(entities, warnings))
    }

    /// Reads every entity of the configured kinds, in the order the backend returns them.
    pub fn fetch_entities(&self) -> Result<(Vec<Entity>, Vec<CatalogWarning>), CatalogError> {
        let (located, warnings) = self.fetch_located()?;
        Ok((
            located.into_iter().map(|(_, entity)| entity).collect(),
            warnings,
        ))
    }

    /// [`RestSource::fetch_entities`] with each entity's place in the answer
    /// (`kind=<k> page <p> item <i>`), for duplicate warnings: the first copy in page order is
    /// kept.
    pub fn fetch_located(&self) -> Result<LocatedEntities, CatalogError> {
        let mut entities = Vec::new();
        let mut warnings = Vec::new();
        self.for_each_item(None, |kind, page, position, item| {
            let location = describe_item(kind, item);
            let (entity, mut problems) =
                Entity::from_value(item, &location, RelationSource::Relations);
            entities.extend(entity.map(|entity| {
                (
                    format!("catalog API kind={kind} page {page} item {position}"),
                    entity,
                )
            }));
            warnings.append(&mut problems);
        })?;
        Ok((entities, warnings))
    }

    /// A cheap fingerprint of the catalog: only `metadata.uid` and `metadata.etag` of every
    /// entity of the configured kinds are read (Backstage's `fields` parameter), and hashed in
    /// sorted order. Backstage changes an entity's etag whenever the entity (relations
    /// included) changes, so an equal fingerprint means an unchanged catalog.
    pub fn consistency_check(&self) -> Result<u64, CatalogError> {
        let mut stamps: Vec<(String, String)> = Vec::new();
        self.for_each_item(Some("metadata.uid,metadata.etag"), |kind, _, _, item| {
            let field = |name: &str| {
                item.get("metadata")
                    .and_then(|metadata| metadata.get(name))
                    .map_or_else(String::new, Value::to_string)
            };
            stamps.push((format!("{kind}/{}", field("uid")), field("etag")));
        })?;
        stamps.sort();
        let mut hasher = DefaultHasher::new();
        stamps.hash(&mut hasher);
        Ok(hasher.finish())
    }

    /// Pages through every configured kind, calling `each(kind, page, position, item)`.
    fn for_each_item(
        &self,
        fields: Option<&str>,
        mut each: impl FnMut(&str, usize, usize, &Value),
    ) -> Result<(), CatalogError> {
        let tls = client_config(self.ca_bundle.as_ref())
            .map_err(|source| CatalogError::Tls { source })?;
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .tls_config(tls)
            .build();
        let url = self.query_url();
        let limit = self.page_size.to_string();
        for kind in &self.kinds {
            let mut cursor: Option<String> = None;
            let mut followed = BTreeSet::new();
            for page_number in 0.. {
                let request = agent.get(&url);
                let request = match &cursor {
                    None => request.query("filter", &format!("kind={kind}")),
                    Some(cursor) => request.query("cursor", cursor),
                };
                let mut request = request.query("limit", &limit);
                if let Some(fields) = fields {
                    request = request.query("fields", fields);
                }
                if let Some(token) = &self.token {
                    request = request.set("Authorization", &format!("Bearer {token}"));
                }
                let page = fetch_page(request, &url)?;
                for (position, item) in page.items.iter().enumerate() {
                    each(kind, page_number, position, item);
                }
                match page.page_info.next_cursor {
                    None => break,
                    Some(next) => {
                        if !followed.insert(next.clone()) {
                            return Err(CatalogError::CursorLoop {
                                url,
                                pages: followed.len() + 1,
                            });
                        }
                        cursor = Some(next);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where an unusable API item came from, stable across catalog instances (no uid, no page).
fn describe_item(kind: &str, item: &Value) -> String {
    match item
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) => format!("catalog API kind={kind} name={name}"),
        None => format!("catalog API kind={kind}"),
    }
}

fn fetch_page(request: ureq::Request, url: &str) -> Result<Page, CatalogError> {
    match request.call() {
        Ok(response) => {
            let reader = response.into_reader().take(MAX_PAGE_BYTES);
            serde_json::from_reader(reader).map_err(|source| CatalogError::Decode {
                url: url.to_owned(),
                source,
            })
        }
        Err(ureq::Error::Status(status @ (401 | 403), _)) => Err(CatalogError::Unauthorized {
            url: url.to_owned(),
            status,
        }),
        Err(ureq::Error::Status(status, response)) => {
            let mut body = String::new();
            // The body only decorates the error; an unreadable one stays empty.
            let _ = response
                .into_reader()
                .take(MAX_ERROR_BODY as u64)
                .read_to_string(&mut body);
            Err(CatalogError::Status {
                url: url.to_owned(),
                status,
                body,
            })
        }
        Err(ureq::Error::Transport(transport)) => match refused_certificate(&transport) {
            Some(source) => Err(CatalogError::Certificate {
                url: url.to_owned(),
                source,
            }),
            None => Err(CatalogError::Transport {
                url: url.to_owned(),
                source: Box::new(transport),
            }),
        },
    }
}

/// The certificate error of a failed TLS handshake. ureq wraps rustls' error in the
/// `io::Error` the handshake returned; `io::Error::source` skips the wrapped error itself, so
/// it is taken out with `get_ref`.
fn refused_certificate(transport: &ureq::Transport) -> Option<rustls::Error> {
    let io = std::error::Error::source(transport)?.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        error @ rustls::Error::InvalidCertificate(_) => Some(error.clone()),
        _ => None,
    }
}
