//! The `meshgate` command line. `main.rs` only gathers the process inputs; everything else is
//! here so that it can be tested without spawning processes.

mod args;
mod check;
mod err;
mod keygen;
mod keys;
mod serve;
mod token;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use err::CliError;

/// Issuer URL of the demo: the mock issuer of the test harness on its default port.
pub const DEMO_ISSUER: &str = "http://127.0.0.1:18080";
/// Audience the demo Envoy configuration expects.
pub const DEMO_AUDIENCE: &str = "meshgate-demo";
const KEY_FILE_NAME: &str = "issuer-keys.json";
const DEFAULT_DEMO_DIR: &str = ".meshgate/demo";

pub const USAGE: &str = "\
meshgate: identity-aware JWT and RBAC authorization for Envoy

usage:
  meshgate token --sub SUBJECT [options]    mint a token with the demo issuer's keys
  meshgate token --backstage --user NAME [--ent] [--backstage-url URL]
                                            sign NAME in at the demo's fake Backstage
                                            (default http://127.0.0.1:17007) and print
                                            their Backstage user token; --ent asks for
                                            the ownership refs in the token
  meshgate keys init [--keys PATH] [--issuer URL]
                                            create the demo issuer key file if absent
  meshgate check --config FILE --url URL [options]
                                            the decision for one request, explained
  meshgate validate FILE...                 compile every meshgate configuration in
                                            plugin JSON, Istio manifests (--istio) or
                                            Envoy bootstraps, naming any bad field
  meshgate keygen --out FILE [--kid KID]    create a snapshot signing key (mode 0600, never
                                            replaced) and print its public key as one
                                            JSON line for the filter config
  meshgate serve --config FILE              serve signed catalog snapshots over HTTP,
                                            resyncing from Backstage (docs/control-plane.md)
  meshgate snapshot build --config FILE --out FILE [--force]
                                            one sync with the server's config, written to
                                            FILE (left alone when the content is unchanged);
                                            fails when a publish guard refuses the catalog
                                            read, unless --force
  meshgate help                             show this text

token options:
  --keys PATH          issuer key file (default: $MESHGATE_DEMO_DIR/issuer-keys.json,
                       else .meshgate/demo/issuer-keys.json)
  --sub SUBJECT        sub claim (required)
  --groups A,B         groups claim; repeatable
  --aud AUDIENCE       aud claim; repeatable or comma separated (default: meshgate-demo)
  --alg ALG            RS256 (default), RS384, RS512, PS256, PS384, PS512, ES256, EdDSA,
                       or HS256, HS384, HS512 with --hs-secret
  --ttl SECONDS        lifetime counted from iat (default: 3600)
  --iat-offset N       iat = now + N seconds
  --nbf-offset N       nbf = now + N seconds (no nbf unless given)
  --exp-offset N       exp = now + N seconds, instead of --ttl
  --no-exp             leave exp out
  --iss URL            iss instead of the key file's issuer
  --kid KID            header kid instead of the signing key's
  --unpublished-key    sign with a valid key that is not in the JWKS
  --email EMAIL        email claim
  --claim NAME=VALUE   extra claim, replacing any claim of that name; VALUE is JSON,
                       or a plain string when it is not valid JSON; repeatable
  --hs-secret SECRET   shared secret for HS256, HS384, HS512

check options (exit 0 allow, 1 deny):
  --config FILE        plugin configuration (JSON), or a YAML file holding one
  --url URL            request URL; its host is the :authority
  --method METHOD      default GET
  --token JWT|@FILE    token, verified with the config's local_jwks (and --jwks)
  --claims JSON|@FILE  claims taken as verified instead of a token (preview)
  --header NAME:VALUE  extra request header; repeatable
  --jwks PROVIDER=FILE keys for a provider that uses remote_jwks
  --now UNIX_SECONDS   clock (default: now)
  --json               the explanation as JSON

keys options:
  --keys PATH          as for token
  --issuer URL         issuer of a new key file (default: http://127.0.0.1:18080)

exit status: 0 success, 1 failure, 2 unusable command line
";

/// What the process supplies: the clock and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliEnv {
    /// Current unix time in seconds.
    pub now: i64,
    /// `$MESHGATE_DEMO_DIR`, if set.
    pub demo_dir: Option<PathBuf>,
}

/// The key file used when `--keys` is not given.
pub fn default_keys_path(demo_dir: Option<&Path>) -> PathBuf {
    demo_dir
        .unwrap_or_else(|| Path::new(DEFAULT_DEMO_DIR))
        .join(KEY_FILE_NAME)
}

/// Runs one command line (without the program name) and returns the exit status.
pub fn run(args: &[String], env: &CliEnv, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match dispatch(args, env, out) {
        Ok(code) => code,
        Err(error) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = report(&error, err);
            error.exit_code()
        }
    }
}

fn dispatch(args: &[String], env: &CliEnv, out: &mut dyn Write) -> Result<u8, CliError> {
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", args),
    };
    match (command, rest.split_first()) {
        ("token", _) => token::run(rest, env, out).map(|()| 0),
        ("check", _) => check::check(rest, env.now, out),
        ("validate", _) => check::validate(rest, out),
        ("keygen", _) => keygen::run(rest, out).map(|()| 0),
        ("keys", Some((sub, keys_args))) if sub == "init" => {
            keys::init(keys_args, env, out).map(|()| 0)
        }
        ("serve", _) => serve::serve(rest),
        ("snapshot", Some((sub, build_args))) if sub == "build" => serve::build(build_args, out),
        ("help" | "--help" | "-h", _) => {
            write_out(out, USAGE)?;
            // Asking for help is not a successful run of a command.
            Ok(2)
        }
        ("keys" | "snapshot", _) => Err(CliError::UnknownCommand {
            command: args.join(" "),
        }),
        (other, _) => Err(CliError::UnknownCommand {
            command: other.to_owned(),
        }),
    }
}

fn report(error: &CliError, err: &mut dyn Write) -> std::io::Result<()> {
    writeln!(err, "meshgate: error: {error}")?;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        writeln!(err, "  caused by: {cause}")?;
        source = cause.source();
    }
    if error.exit_code() == 2 {
        writeln!(err)?;
        err.write_all(USAGE.as_bytes())?;
    }
    Ok(())
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Output { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn run_args(args: &[&str], env: &CliEnv) -> (u8, String, String) {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, env, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    pub(super) fn env() -> CliEnv {
        CliEnv {
            now: 1_700_000_000,
            demo_dir: None,
        }
    }

    #[test]
    fn help_prints_usage_and_exits_2() {
        for args in [&["help"][..], &[], &["--help"]] {
            let (code, out, err) = run_args(args, &env());
            assert_eq!(code, 2);
            assert_eq!(out, USAGE);
            assert_eq!(err, "");
        }
    }

    #[test]
    fn unknown_commands_exit_2_with_usage_on_stderr() {
        for (args, named) in [
            (&["frobnicate"][..], "`frobnicate`"),
            (&["keys"], "`keys`"),
            (&["keys", "burn"], "`keys burn`"),
            (&["snapshot"], "`snapshot`"),
            (&["snapshot", "serve"], "`snapshot serve`"),
        ] {
            let (code, out, err) = run_args(args, &env());
            assert_eq!(code, 2, "{args:?}");
            assert_eq!(out, "");
            assert!(
                err.starts_with("meshgate: error: unknown command "),
                "{err}"
            );
            assert!(err.contains(named) && err.contains("usage:"), "{err}");
        }
    }

    #[test]
    fn default_key_file_follows_the_demo_dir() {
        assert_eq!(
            default_keys_path(None),
            Path::new(".meshgate/demo/issuer-keys.json")
        );
        assert_eq!(
            default_keys_path(Some(Path::new("/tmp/demo"))),
            Path::new("/tmp/demo/issuer-keys.json")
        );
    }
}
