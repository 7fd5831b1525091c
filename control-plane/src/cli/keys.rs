//! `meshgate keys init`: create the demo issuer's key file.

use std::io::Write;
use std::path::PathBuf;

use super::args::Args;
use super::err::CliError;
use super::{default_keys_path, write_out, CliEnv, Command, DEMO_ISSUER};
use crate::issuer::KeySet;

/// A parsed `keys init` command line.
pub(super) struct InitCommand {
    path: PathBuf,
    issuer: String,
}

pub(super) fn parse(args: &mut Args<'_>, env: &CliEnv) -> Result<Command, CliError> {
    let mut keys = None;
    let mut issuer = DEMO_ISSUER.to_owned();
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--keys" => keys = Some(PathBuf::from(flag.value()?)),
            "--issuer" => flag.value()?.clone_into(&mut issuer),
            _ => return Err(flag.unhandled()),
        }
    }
    let path = keys.unwrap_or_else(|| default_keys_path(env.demo_dir.as_deref()));
    Ok(Command::KeysInit(InitCommand { path, issuer }))
}

pub(super) fn init(command: InitCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let InitCommand { path, issuer } = command;
    // Never replace existing keys: tokens already handed out and a running issuer depend on them.
    if path.exists() {
        let existing = KeySet::load(&path)?;
        return write_out(
            out,
            &format!(
                "{} already exists (issuer {}); left unchanged\n",
                path.display(),
                existing.issuer()
            ),
        );
    }
    KeySet::generate(&issuer)?.save(&path)?;
    write_out(
        out,
        &format!("created {} (issuer {issuer})\n", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, run_args};
    use crate::issuer::test_keys::{shared_keyset, temp_dir};
    use crate::issuer::KeySet;

    #[test]
    fn existing_key_file_is_left_alone() {
        let dir = temp_dir("keys-init");
        let path = dir.join("issuer-keys.json");
        shared_keyset().save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let env = crate::cli::CliEnv {
            demo_dir: Some(dir.clone()),
            ..env()
        };
        let (code, out, err) = run_args(&["keys", "init", "--issuer", "http://other"], &env);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains("already exists"), "{out}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_key_file_is_created_with_the_issuer() {
        let dir = temp_dir("keys-create");
        let path = dir.join("sub/keys.json");
        let arg = format!("--keys={}", path.display());
        let (code, out, err) = run_args(&["keys", "init", &arg, "--issuer", "http://x"], &env());
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.starts_with("created "), "{out}");
        assert_eq!(KeySet::load(&path).unwrap().issuer(), "http://x");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_option_is_a_usage_error() {
        let (code, _, err) = run_args(&["keys", "init", "--force"], &env());
        assert_eq!(code, 2);
        assert!(err.contains("unknown option `--force`"), "{err}");
    }
}
