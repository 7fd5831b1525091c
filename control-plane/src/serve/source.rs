//! The catalog as one sync reads it, remembering enough of the last read to skip the next
//! one when nothing changed:
//!
//! - directory: [`DirSource`] stats every file and re-parses only changed ones; an unchanged
//!   directory is not read at all;
//! - Backstage API: a cheap consistency check first (only `metadata.uid` and `metadata.etag`
//!   of every entity); an unchanged answer skips the full read.

use std::borrow::Cow;

use crate::catalog::{CatalogIndex, DirFingerprint, DirSource, RestSource};

use super::config::{BackstageCatalog, CatalogSource};
use super::err::SyncError;
use super::token::resolve_token;

/// What one read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The catalog is the one read last time.
    Unchanged,
    /// The catalog was read (or, for a directory, re-read where it changed); take it with
    /// [`CatalogReader::take_index`].
    Catalog,
}

/// A catalog source with what it remembers between syncs.
pub(crate) enum CatalogReader {
    Directory(DirSource),
    Backstage {
        config: BackstageCatalog,
        /// The consistency check of the last full read.
        checked: Option<u64>,
        /// The last full read, until it is taken.
        read: Option<CatalogIndex>,
    },
}

impl CatalogReader {
    pub(crate) fn new(source: &CatalogSource) -> CatalogReader {
        match source {
            CatalogSource::Directory(dir) => CatalogReader::Directory(DirSource::new(dir)),
            CatalogSource::Backstage(config) => CatalogReader::Backstage {
                config: config.clone(),
                checked: None,
                read: None,
            },
        }
    }

    /// Whether reads can fail transiently, so a failed read is worth retrying (the API).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, CatalogReader::Backstage { .. })
    }

    /// Reads the catalog. With `may_skip`, a catalog known to be the one read last time is
    /// [`Read::Unchanged`] instead.
    pub(crate) fn read(&mut self, may_skip: bool) -> Result<Read, SyncError> {
        match self {
            CatalogReader::Directory(source) => {
                if may_skip {
                    let fingerprint = source.fingerprint().map_err(SyncError::Catalog)?;
                    if source.matches(&fingerprint) {
                        return Ok(Read::Unchanged);
                    }
                }
                let refresh = source.refresh().map_err(SyncError::Catalog)?;
                if may_skip && !refresh.changed() {
                    return Ok(Read::Unchanged);
                }
                Ok(Read::Catalog)
            }
            CatalogReader::Backstage {
                config,
                checked,
                read,
            } => {
                let source = rest_source(config)?;
                let check = source.consistency_check().map_err(SyncError::Catalog)?;
                if may_skip && *checked == Some(check) {
                    return Ok(Read::Unchanged);
                }
                let index = source.load().map_err(SyncError::Catalog)?;
                *checked = Some(check);
                *read = Some(index);
                Ok(Read::Catalog)
            }
        }
    }

    /// The catalog as last read: the directory's index, kept between reads (only changed
    /// files' entities were replaced), or the API's last answer, handed over once.
    pub(crate) fn take_index(&mut self) -> Cow<'_, CatalogIndex> {
        match self {
            CatalogReader::Directory(source) => Cow::Borrowed(source.index()),
            CatalogReader::Backstage { read, .. } => Cow::Owned(read.take().unwrap_or_default()),
        }
    }

    /// Whether the catalog can be watched (a directory).
    pub(crate) fn watches(&self) -> bool {
        matches!(self, CatalogReader::Directory(_))
    }

    /// The directory's file stamps now; `None` for the API or when the directory cannot be
    /// listed (a missing directory stays `None`, so it does not trigger sync after sync).
    pub(crate) fn watch_fingerprint(&self) -> Option<DirFingerprint> {
        match self {
            CatalogReader::Directory(source) => source.fingerprint().ok(),
            CatalogReader::Backstage { .. } => None,
        }
    }
}

fn rest_source(backstage: &BackstageCatalog) -> Result<RestSource, SyncError> {
    let source = RestSource::new(backstage.base_url.as_str())
        .with_kinds(backstage.kinds.iter().cloned())
        .with_page_size(backstage.page_size)
        .with_timeout(backstage.timeout);
    let source = match &backstage.ca_bundle {
        None => source,
        Some(bundle) => source.with_ca_bundle(bundle.clone()),
    };
    Ok(match &backstage.token {
        None => source,
        Some(token) => source.with_token(resolve_token(token)?),
    })
}
