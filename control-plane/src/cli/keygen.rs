//! `meshgate keygen`: create a snapshot signing key and print its public key.

use std::io::Write;
use std::path::PathBuf;

use super::args::Args;
use super::err::CliError;
use super::{write_out, CliEnv, Command};
use crate::issuer::KeySetError;
use crate::snapshot::{generate_signing_key, public_key_line, write_new_signing_key, KeyFileError};

/// A parsed `keygen` command line.
pub(super) struct KeygenCommand {
    path: PathBuf,
    kid: Option<String>,
}

pub(super) fn parse(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut path: Option<PathBuf> = None;
    let mut kid: Option<String> = None;
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--out" => path = Some(flag.value()?.into()),
            "--kid" => kid = Some(flag.value()?.to_owned()),
            _ => return Err(flag.unhandled()),
        }
    }
    let path = path.ok_or(CliError::MissingFlag { flag: "--out" })?;
    Ok(Command::Keygen(KeygenCommand { path, kid }))
}

/// Writes a new key file (mode 0600, never replacing one) and prints the public key line, and
/// only that, so that `meshgate keygen --out key.json > public.json` captures it.
pub(super) fn run(command: KeygenCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let KeygenCommand { path, kid } = command;
    let key = generate_signing_key(kid.as_deref(), &mut rand::rngs::OsRng).map_err(|error| {
        CliError::Invalid {
            what: "option `--kid`".to_owned(),
            detail: error.to_string(),
        }
    })?;
    write_new_signing_key(&key, &path).map_err(|error| match error {
        KeyFileError::Write { path, source } => CliError::Keys(KeySetError::Write { path, source }),
        other => CliError::Invalid {
            what: "option `--out`".to_owned(),
            detail: other.to_string(),
        },
    })?;
    write_out(out, &format!("{}\n", public_key_line(&key)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, run_args};
    use crate::issuer::test_keys::temp_dir;
    use crate::snapshot::{load_signing_key, PublicKeySpec, TrustedKey};

    #[test]
    fn keygen_writes_a_private_key_and_prints_the_public_one() {
        let dir = temp_dir("keygen");
        let path = dir.join("cp/signing.json");
        let arg = path.display().to_string();
        let (code, out, err) = run_args(&["keygen", "--out", &arg, "--kid", "cp-2025"], &env());
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out.lines().count(), 1, "{out}");
        let spec: PublicKeySpec = serde_json::from_str(&out).unwrap();
        assert_eq!(spec.kid, "cp-2025");
        let key = load_signing_key(&path).unwrap();
        assert_eq!(TrustedKey::from_spec(&spec).unwrap(), key.trusted_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Never replaces a key.
        let before = std::fs::read(&path).unwrap();
        let (code, out, err) = run_args(&["keygen", &format!("--out={arg}")], &env());
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keygen_without_kid_derives_one_and_keys_differ() {
        let dir = temp_dir("keygen-kid");
        let mut lines = Vec::new();
        for name in ["a.json", "b.json"] {
            let arg = dir.join(name).display().to_string();
            let (code, out, err) = run_args(&["keygen", "--out", &arg], &env());
            assert_eq!((code, err.as_str()), (0, ""));
            let spec: PublicKeySpec = serde_json::from_str(&out).unwrap();
            assert!(spec.kid.starts_with("snapshot-"), "{}", spec.kid);
            lines.push(out);
        }
        assert_ne!(lines[0], lines[1]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keygen_usage_errors() {
        let (code, _, err) = run_args(&["keygen"], &env());
        assert_eq!(code, 2);
        assert!(err.contains("option `--out` is required"), "{err}");
        let (code, _, err) = run_args(
            &["keygen", "--out", "/nonexistent/x", "--kid", "a b"],
            &env(),
        );
        assert_eq!(code, 2);
        assert!(err.contains("option `--kid`: key id `a b`"), "{err}");
        let (code, _, err) = run_args(&["keygen", "--out", "x", "--force"], &env());
        assert_eq!(code, 2);
        assert!(err.contains("unknown option `--force`"), "{err}");
    }

    #[test]
    fn keygen_reports_unwritable_paths() {
        let dir = temp_dir("keygen-unwritable");
        let file = dir.join("file");
        std::fs::write(&file, "").unwrap();
        let arg = file.join("key.json").display().to_string();
        let (code, out, err) = run_args(&["keygen", "--out", &arg], &env());
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("cannot write key file"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
