//! Catalog source: a directory of Backstage descriptor files (`catalog-info.yaml` format,
//! several documents per file), for users without a running Backstage and for tests.
//!
//! Every `*.yaml` / `*.yml` file under the directory is read, in sorted path order, and
//! relations are derived from `spec` as Backstage's processors do (see
//! [`RelationSource::Spec`]). `Location` entities are read like any other and do not pull in
//! further files: the directory is the catalog.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use super::error::CatalogError;
use super::model::{Entity, LocatedEntities, RelationSource};

/// How deep directories may nest below the catalog directory.
const MAX_DEPTH: usize = 32;

/// The entities in one multi-document YAML text, each with its location
/// (`location#<document index>`), in document order. Empty documents are skipped.
pub fn parse_documents(text: &str, location: &str) -> Result<LocatedEntities, serde_norway::Error> {
    let mut entities = Vec::new();
    let mut warnings = Vec::new();
    for (position, value) in yaml_documents(text)? {
        let here = format!("{location}#{position}");
        let (entity, mut problems) = Entity::from_value(&value, &here, RelationSource::Spec);
        entities.extend(entity.map(|entity| (here, entity)));
        warnings.append(&mut problems);
    }
    Ok((entities, warnings))
}

/// The non-empty documents of a multi-document YAML text as JSON values, each with its
/// position among all documents.
pub fn yaml_documents(text: &str) -> Result<Vec<(usize, Value)>, serde_norway::Error> {
    let mut documents = Vec::new();
    for (position, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            documents.push((position, value));
        }
    }
    Ok(documents)
}

/// Every catalog file under `dir` (not hidden, `*.yaml` or `*.yml`), in directory order.
pub(crate) fn collect_files(
    dir: &Path,
    depth: usize,
    files: &mut Vec<PathBuf>,
) -> Result<(), CatalogError> {
    if depth > MAX_DEPTH {
        return Err(CatalogError::TooDeep {
            path: dir.to_owned(),
            max: MAX_DEPTH,
        });
    }
    let read_dir = |source| CatalogError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // Follows symlinks to files; a symlinked directory is not entered (no loops).
        let file_type = entry.file_type().map_err(read_dir)?;
        if hidden {
            continue;
        }
        if file_type.is_dir() {
            collect_files(&path, depth + 1, files)?;
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // Reading a whole directory is `dir_source`'s; these tests read through it.
    use super::super::dir_source::load_dir;
    use super::super::warning::CatalogWarning;
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshgate-catalog-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn multi_document_files_in_nested_directories() {
        let dir = scratch("dir");
        std::fs::create_dir_all(dir.join("teams/data")).unwrap();
        std::fs::write(
            dir.join("teams/data/catalog-info.yaml"),
            "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: data-eng\nspec:\n  type: team\n  children: []\n---\n---\nkind: User\nmetadata:\n  name: alice\nspec:\n  memberOf: [data-eng]\n",
        )
        .unwrap();
        std::fs::write(dir.join("broken.yml"), "kind: User\nmetadata: {}\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not: [yaml").unwrap();
        std::fs::write(dir.join(".hidden.yaml"), "not: [yaml").unwrap();
        let index = load_dir(&dir).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(
            index.warnings(),
            [CatalogWarning::InvalidEntity {
                location: "broken.yml#0".into(),
                reason: "no string `metadata.name`".into()
            }]
        );
        std::fs::write(dir.join("bad.yaml"), "kind: [unclosed\n").unwrap();
        assert!(matches!(load_dir(&dir), Err(CatalogError::Yaml { .. })));
        assert!(matches!(
            load_dir(&dir.join("missing")),
            Err(CatalogError::ReadDir { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
