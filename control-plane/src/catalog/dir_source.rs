//! The directory catalog source, read incrementally: each file is fingerprinted by path,
//! size and modification time (nanoseconds), and its parsed entities are cached. A sync stats
//! every file and reads only those whose fingerprint moved; a file whose content hash did not
//! change (a `touch`, a git checkout of the same content) is not parsed again. An unchanged
//! directory costs one directory walk and one `stat` per file.
//!
//! A file that changes while it is read (size or modification time differ before and after
//! the read) is read again, a few times, and then fails the read: half a file is never used.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::error::CatalogError;
use super::index::CatalogIndex;
use super::model::Entity;
use super::warning::CatalogWarning;
use super::yaml_dir::{collect_files, parse_documents};

/// How often a file that keeps changing while it is read is read again.
const REREADS: usize = 3;

/// What `stat` says about a file: enough to notice almost every change without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub len: u64,
    /// Modification time in nanoseconds since the epoch (0 when unknown or before it).
    pub modified_ns: u128,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let metadata = std::fs::metadata(path)?;
        let modified_ns = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        Ok(FileStamp {
            len: metadata.len(),
            modified_ns,
        })
    }
}

/// Every catalog file under a directory with its stamp, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DirFingerprint {
    files: Vec<(PathBuf, FileStamp)>,
}

impl DirFingerprint {
    /// Catalog files found.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// One parsed file.
#[derive(Debug, Clone)]
struct CachedFile {
    stamp: FileStamp,
    content_hash: u64,
    /// `(location, entity)` in document order.
    entities: Vec<(String, Entity)>,
    warnings: Vec<CatalogWarning>,
}

/// What [`DirSource::refresh`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Files parsed again because their content changed (new files included).
    pub parsed: usize,
    /// Files whose stamp moved but whose content was the same.
    pub touched: usize,
    /// Files that disappeared.
    pub removed: usize,
}

impl Refresh {
    /// Whether the catalog content changed.
    pub fn changed(&self) -> bool {
        self.parsed > 0 || self.removed > 0
    }
}

/// A catalog directory and the parsed content of its files.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
    /// By path relative to `dir`, in path order; `None` before the first successful read.
    files: Option<BTreeMap<PathBuf, CachedFile>>,
}

impl DirSource {
    pub fn new(dir: impl Into<PathBuf>) -> DirSource {
        DirSource {
            dir: dir.into(),
            files: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists and stats every catalog file; reads none.
    pub fn fingerprint(&self) -> Result<DirFingerprint, CatalogError> {
        let mut paths = Vec::new();
        collect_files(&self.dir, 0, &mut paths)?;
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let stamp = FileStamp::of(&path).map_err(|source| CatalogError::ReadFile {
                path: path.clone(),
                source,
            })?;
            files.push((path, stamp));
        }
        Ok(DirFingerprint { files })
    }

    /// Whether `fingerprint` is exactly what the last successful refresh read.
    pub fn matches(&self, fingerprint: &DirFingerprint) -> bool {
        let Some(files) = &self.files else {
            return false;
        };
        files.len() == fingerprint.files.len()
            && files
                .iter()
                .zip(&fingerprint.files)
                .all(|((relative, cached), (path, stamp))| {
                    cached.stamp == *stamp && self.dir.join(relative) == *path
                })
    }

    /// Reads what changed since the last successful refresh. On error the previous content is
    /// kept and the next refresh tries again.
    pub fn refresh(&mut self) -> Result<Refresh, CatalogError> {
        let fingerprint = self.fingerprint()?;
        let mut previous = self.files.take().unwrap_or_default();
        let mut next = BTreeMap::new();
        let mut refresh = Refresh::default();
        let result = (|| {
            for (path, stamp) in &fingerprint.files {
                let relative = path.strip_prefix(&self.dir).unwrap_or(path).to_owned();
                let cached = previous.remove(&relative);
                if let Some(cached) = cached.as_ref().filter(|cached| cached.stamp == *stamp) {
                    next.insert(relative, cached.clone());
                    continue;
                }
                let (text, stamp) = read_stable(path)?;
                let content_hash = hash(&text);
                match cached {
                    Some(mut cached) if cached.content_hash == content_hash => {
                        cached.stamp = stamp;
                        refresh.touched += 1;
                        next.insert(relative, cached);
                    }
                    _ => {
                        let location = relative.to_string_lossy().replace('\\', "/");
                        let (entities, warnings) =
                            parse_documents(&text, &location).map_err(|source| {
                                CatalogError::Yaml {
                                    path: path.clone(),
                                    source,
                                }
                            })?;
                        refresh.parsed += 1;
                        next.insert(
                            relative,
                            CachedFile {
                                stamp,
                                content_hash,
                                entities,
                                warnings,
                            },
                        );
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                refresh.removed = previous.len();
                self.files = Some(next);
                Ok(refresh)
            }
            Err(error) => {
                // Put back what was there; files already moved to `next` are unchanged or
                // newer, and `previous` has the rest.
                previous.extend(next);
                self.files = Some(previous).filter(|files| !files.is_empty());
                Err(error)
            }
        }
    }

    /// The cached content as an index, in file path then document order. Empty before the
    /// first successful refresh.
    pub fn index(&self) -> CatalogIndex {
        let files = self.files.iter().flat_map(BTreeMap::values);
        let warnings = files
            .clone()
            .flat_map(|file| file.warnings.iter().cloned())
            .collect();
        let entities = files.flat_map(|file| file.entities.iter().cloned());
        CatalogIndex::from_located(entities, warnings)
    }
}

/// The file's text and its stamp, read again while the stamp moves during the read.
fn read_stable(path: &Path) -> Result<(String, FileStamp), CatalogError> {
    let error = |source| CatalogError::ReadFile {
        path: path.to_owned(),
        source,
    };
    for _ in 0..REREADS {
        let before = FileStamp::of(path).map_err(error)?;
        let text = std::fs::read_to_string(path).map_err(error)?;
        let after = FileStamp::of(path).map_err(error)?;
        if before == after && before.len == text.len() as u64 {
            return Ok((text, after));
        }
    }
    Err(CatalogError::Unstable {
        path: path.to_owned(),
        reads: REREADS,
    })
}

fn hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
