//! The catalog's bearer token, read at every sync so a rotated secret is picked up.

use super::config::CatalogToken;
use super::err::SyncError;

pub(crate) fn resolve_token(token: &CatalogToken) -> Result<String, SyncError> {
    match token {
        CatalogToken::Value(value) => Ok(value.trim().to_owned()),
        CatalogToken::Env(var) => std::env::var(var)
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| SyncError::TokenEnv { var: var.clone() }),
        CatalogToken::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| SyncError::TokenFile {
                path: path.clone(),
                source,
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(SyncError::TokenEmpty { path: path.clone() });
            }
            Ok(token.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    #[test]
    fn tokens_come_from_env_files_or_values() {
        let fixture = Fixture::new("sync-token");
        let file = fixture.dir.join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        assert_eq!(
            resolve_token(&CatalogToken::File(file.clone())).unwrap(),
            "s3cret"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            resolve_token(&CatalogToken::File(file.clone())),
            Err(SyncError::TokenEmpty { .. })
        ));
        assert!(matches!(
            resolve_token(&CatalogToken::File(fixture.dir.join("none"))),
            Err(SyncError::TokenFile { .. })
        ));
        assert_eq!(
            resolve_token(&CatalogToken::Value("v".into())).unwrap(),
            "v"
        );
        let missing = "MESHGATE_TEST_TOKEN_THAT_IS_NEVER_SET";
        let error = resolve_token(&CatalogToken::Env(missing.into())).unwrap_err();
        assert_eq!(error.reason(), "token");
        assert!(error.to_string().contains(missing));
    }
}
