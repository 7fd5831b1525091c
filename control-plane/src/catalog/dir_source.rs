//! The directory catalog source, read incrementally: each file is fingerprinted by path,
//! size and modification time (nanoseconds), and its parsed entities are cached. A sync stats
//! every file and reads only those whose fingerprint moved; a file whose content hash did not
//! change (a `touch`, a git checkout of the same content) is not parsed again. An unchanged
//! directory costs one directory walk and one `stat` per file. The index is kept between
//! reads ([`LiveIndex`]): a changed file replaces only its own entities.
//!
//! A file that changes while it is read (size or modification time differ before and after
//! the read) is read again, a few times, and then fails the read: half a file is never used.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::error::CatalogError;
use super::index::CatalogIndex;
use super::live::{LiveIndex, SourceRead};
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

/// One read file; its entities are in the index.
#[derive(Debug, Clone)]
struct CachedFile {
    stamp: FileStamp,
    content_hash: u64,
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

/// A catalog directory, what was read of its files, and their index.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
    /// By path relative to `dir`, in path order; `None` before the first successful read.
    files: Option<BTreeMap<PathBuf, CachedFile>>,
    /// The entities of every file in `files`, indexed.
    live: LiveIndex,
}

impl DirSource {
    pub fn new(dir: impl Into<PathBuf>) -> DirSource {
        DirSource {
            dir: dir.into(),
            files: None,
            live: LiveIndex::default(),
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
        let mut parsed: Vec<(PathBuf, Option<SourceRead>)> = Vec::new();
        let result = (|| {
            for (path, stamp) in &fingerprint.files {
                let relative = path.strip_prefix(&self.dir).unwrap_or(path).to_owned();
                // An entry leaves `previous` only once its replacement is read, so a failed
                // read keeps the old content of that file.
                let same_stamp = previous
                    .get(&relative)
                    .is_some_and(|cached| cached.stamp == *stamp);
                if same_stamp {
                    if let Some(cached) = previous.remove(&relative) {
                        next.insert(relative, cached);
                    }
                    continue;
                }
                let (text, stamp) = read_stable(path)?;
                let content_hash = hash(&text);
                let same_content = previous
                    .get(&relative)
                    .is_some_and(|cached| cached.content_hash == content_hash);
                if same_content {
                    if let Some(mut cached) = previous.remove(&relative) {
                        cached.stamp = stamp;
                        refresh.touched += 1;
                        next.insert(relative, cached);
                    }
                    continue;
                }
                let location = relative.to_string_lossy().replace('\\', "/");
                let content =
                    parse_documents(&text, &location).map_err(|source| CatalogError::Yaml {
                        path: path.clone(),
                        source,
                    })?;
                drop(text);
                previous.remove(&relative);
                refresh.parsed += 1;
                parsed.push((relative.clone(), Some(content)));
                next.insert(
                    relative,
                    CachedFile {
                        stamp,
                        content_hash,
                    },
                );
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                refresh.removed = previous.len();
                parsed.extend(previous.into_keys().map(|gone| (gone, None)));
                self.live.apply(parsed);
                self.files = Some(next);
                Ok(refresh)
            }
            Err(error) => {
                // Every file's entry matches its own stamp and the index holds its content:
                // `next` holds those read in this refresh, `previous` the others.
                self.live.apply(parsed);
                previous.extend(next);
                self.files = Some(previous).filter(|files| !files.is_empty());
                Err(error)
            }
        }
    }

    /// The index of what was read, as [`CatalogIndex::from_located`] builds it from every
    /// file in path then document order. Empty before the first successful refresh.
    pub fn index(&self) -> &CatalogIndex {
        self.live.index()
    }

    /// The index, without the bookkeeping that follows changes.
    pub fn into_index(self) -> CatalogIndex {
        self.live.into_index()
    }
}

/// Reads every catalog file under `dir` into an index. [`DirSource`] does the same and
/// remembers what it read, so the next read parses only changed files.
pub fn load_dir(dir: &Path) -> Result<CatalogIndex, CatalogError> {
    let mut source = DirSource::new(dir);
    source.refresh()?;
    Ok(source.into_index())
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::catalog::warning::CatalogWarning;

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "meshgate-dir-source-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn set_modified(path: &Path, time: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    fn refresh(parsed: usize, touched: usize, removed: usize) -> Refresh {
        Refresh {
            parsed,
            touched,
            removed,
        }
    }

    #[test]
    fn only_changed_files_are_parsed_again() {
        let dir = scratch("refresh");
        let a = dir.join("a.yaml");
        let b = dir.join("b.yaml");
        std::fs::write(&a, "kind: User\nmetadata: {name: alice}\n").unwrap();
        std::fs::write(&b, "kind: Group\nmetadata: {name: team}\n").unwrap();
        let mut source = DirSource::new(&dir);
        assert!(!source.matches(&source.fingerprint().unwrap()));
        assert_eq!(source.refresh().unwrap(), refresh(2, 0, 0));
        assert!(source.matches(&source.fingerprint().unwrap()));
        // Nothing changed: nothing read.
        assert_eq!(source.refresh().unwrap(), refresh(0, 0, 0));
        // Touched, same content: read and hashed, not parsed.
        set_modified(&a, SystemTime::now() + Duration::from_secs(5));
        assert!(!source.matches(&source.fingerprint().unwrap()));
        assert_eq!(source.refresh().unwrap(), refresh(0, 1, 0));
        // Changed content: parsed again; a removed file is noticed.
        std::fs::write(&a, "kind: User\nmetadata: {name: alicia}\n").unwrap();
        std::fs::remove_file(&b).unwrap();
        let got = source.refresh().unwrap();
        assert_eq!(got, refresh(1, 0, 1));
        assert!(got.changed());
        let index = source.index();
        let names: Vec<String> = index.entities().map(|e| e.entity_ref.to_string()).collect();
        assert_eq!(names, ["user:default/alicia"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_file_keeps_the_previous_content_and_is_read_again() {
        let dir = scratch("broken");
        let a = dir.join("a.yaml");
        std::fs::write(&a, "kind: User\nmetadata: {name: alice}\n").unwrap();
        let mut source = DirSource::new(&dir);
        source.refresh().unwrap();
        for broken in ["kind: [unclosed\n", "\u{0}\u{1}: ["] {
            std::fs::write(&a, broken).unwrap();
            assert!(matches!(source.refresh(), Err(CatalogError::Yaml { .. })));
            assert_eq!(source.index().len(), 1);
        }
        // Empty and duplicated files are content like any other.
        std::fs::write(&a, "").unwrap();
        assert_eq!(source.refresh().unwrap(), refresh(1, 0, 0));
        assert!(source.index().is_empty());
        let twice = "kind: User\nmetadata: {name: bob}\n---\nkind: User\nmetadata: {name: Bob}\nspec: {memberOf: [x]}\n";
        std::fs::write(&a, twice).unwrap();
        source.refresh().unwrap();
        let index = source.index();
        assert_eq!(index.len(), 1);
        assert_eq!(
            index.warnings(),
            [CatalogWarning::DuplicateEntity {
                entity: "user:default/bob".into(),
                kept: "a.yaml#0".into(),
                dropped: "a.yaml#1".into(),
            }]
        );
        // A missing directory is an error, not an empty catalog.
        assert!(matches!(
            DirSource::new(dir.join("missing")).refresh(),
            Err(CatalogError::ReadDir { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
