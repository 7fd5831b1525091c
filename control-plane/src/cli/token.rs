//! `meshgate token`: mint a token with the demo issuer's keys and print it, or, with
//! `--backstage`, sign a user in at the demo's fake Backstage and print their Backstage token.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::args::{comma_list, Args};
use super::err::CliError;
use super::table::{TOKEN, TOKEN_BACKSTAGE};
use super::{default_keys_path, write_out, CliEnv, Command, DEMO_AUDIENCE};
use crate::issuer::{KeySet, MintRequest};

/// A parsed `token` command line.
#[derive(Debug, PartialEq)]
pub(super) struct TokenCommand {
    keys: PathBuf,
    request: MintRequest,
}

/// Where the demo's fake Backstage listens (`scripts/demo.sh`).
pub(super) const DEMO_BACKSTAGE_URL: &str = "http://127.0.0.1:17007";

/// A sign-in at a Backstage auth backend's guest refresh route (the demo's fake Backstage).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BackstageSignIn {
    /// The backend's base URL.
    url: String,
    /// The user, as an entity name or ref.
    user: String,
    /// Ask for the ownership refs in the token (`ent`).
    ent: bool,
}

pub(super) fn run(command: TokenCommand, out: &mut dyn Write) -> Result<(), CliError> {
    if !command.keys.exists() {
        return Err(CliError::KeysMissing { path: command.keys });
    }
    let token = KeySet::load(&command.keys)?.mint(&command.request)?;
    write_out(out, &format!("{token}\n"))
}

pub(super) fn run_backstage(
    sign_in: &BackstageSignIn,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let token = backstage_token(sign_in)?;
    write_out(out, &format!("{token}\n"))
}

pub(super) fn parse(args: &mut Args<'_>, env: &CliEnv) -> Result<Command, CliError> {
    read_token(args, env).map(Command::Token)
}

pub(super) fn parse_backstage(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    read_backstage(args).map(Command::BackstageToken)
}

fn read_token(args: &mut Args<'_>, env: &CliEnv) -> Result<TokenCommand, CliError> {
    let mut keys = None;
    let mut sub = None;
    let mut request = MintRequest::new("", env.now);
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--keys" => keys = Some(PathBuf::from(flag.value()?)),
            "--sub" => sub = Some(flag.value()?.to_owned()),
            "--groups" => request.groups.extend(comma_list(flag.value()?)),
            "--aud" => request.audiences.extend(comma_list(flag.value()?)),
            "--alg" => flag.value()?.clone_into(&mut request.alg),
            "--ttl" => request.ttl_s = flag.seconds()?,
            "--iat-offset" => request.iat_offset_s = flag.seconds()?,
            "--nbf-offset" => request.nbf_offset_s = Some(flag.seconds()?),
            "--exp-offset" => request.exp_offset_s = Some(flag.seconds()?),
            "--no-exp" => request.no_exp = true,
            "--iss" => request.issuer_override = Some(flag.value()?.to_owned()),
            "--kid" => request.kid_override = Some(flag.value()?.to_owned()),
            "--unpublished-key" => request.use_unpublished_key = true,
            "--email" => request.email = Some(flag.value()?.to_owned()),
            "--claim" => {
                let (name, value) = claim(flag.value()?)?;
                request.extra_claims.insert(name, value);
            }
            "--hs-secret" => request.hs_secret = Some(flag.value()?.as_bytes().to_vec()),
            _ => return Err(flag.unhandled()),
        }
    }
    request.sub = sub.ok_or(CliError::MissingFlag { flag: "--sub" })?;
    if request.audiences.is_empty() {
        request.audiences.push(DEMO_AUDIENCE.to_owned());
    }
    Ok(TokenCommand {
        keys: keys.unwrap_or_else(|| default_keys_path(env.demo_dir.as_deref())),
        request,
    })
}

/// `--backstage --user NAME [--ent] [--backstage-url URL]`; the demo issuer's options don't
/// apply to a token Backstage signs.
fn read_backstage(args: &mut Args<'_>) -> Result<BackstageSignIn, CliError> {
    let mut sign_in = BackstageSignIn {
        url: DEMO_BACKSTAGE_URL.to_owned(),
        user: String::new(),
        ent: false,
    };
    let mut user = None;
    loop {
        let flag = match args.next_flag() {
            Ok(Some(flag)) => flag,
            Ok(None) => break,
            Err(CliError::UnknownFlag { flag }) if is_issuer_flag(&flag) => {
                return Err(CliError::Invalid {
                    what: format!("option `{flag}`"),
                    detail: String::from(
                        "does not apply to --backstage tokens, which Backstage signs (use --user, --ent, --backstage-url)",
                    ),
                })
            }
            Err(error) => return Err(error),
        };
        match flag.name {
            "--backstage" => {}
            "--user" => user = Some(flag.value()?.to_owned()),
            "--ent" => sign_in.ent = true,
            "--backstage-url" => {
                sign_in.url = flag.value()?.trim_end_matches('/').to_owned();
            }
            _ => return Err(flag.unhandled()),
        }
    }
    sign_in.user = user
        .filter(|u| !u.is_empty())
        .ok_or(CliError::MissingFlag { flag: "--user" })?;
    Ok(sign_in)
}

/// An option of the demo issuer's form only.
fn is_issuer_flag(flag: &str) -> bool {
    TOKEN.option(flag).is_some() && TOKEN_BACKSTAGE.option(flag).is_none()
}

/// Signs the user in through the backend's guest refresh route and returns
/// `backstageIdentity.token` from Backstage's refresh response.
fn backstage_token(sign_in: &BackstageSignIn) -> Result<String, CliError> {
    let url = format!("{}/api/auth/guest/refresh", sign_in.url);
    let failed = |detail: String| CliError::BackstageSignIn {
        url: url.clone(),
        detail,
    };
    let mut request = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .get(&url)
        .set("X-Requested-With", "XMLHttpRequest")
        .query("user", &sign_in.user);
    if sign_in.ent {
        request = request.query("ent", "true");
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            let body = response.into_string().unwrap_or_default();
            let shown: String = body.chars().take(300).collect();
            return Err(failed(format!("HTTP {status}: {shown}")));
        }
        Err(ureq::Error::Transport(transport)) => {
            return Err(failed(format!(
                "{transport} (is the demo running? `./build.sh demo` starts the fake Backstage)"
            )))
        }
    };
    let body: Value = response
        .into_json()
        .map_err(|e| failed(format!("the answer is not JSON: {e}")))?;
    let token = body
        .pointer("/backstageIdentity/token")
        .and_then(Value::as_str)
        .ok_or_else(|| failed(String::from("the answer has no `backstageIdentity.token`")))?;
    check_signed_in_user(token, &sign_in.user).map_err(failed)?;
    Ok(token.to_owned())
}

/// A real Backstage's guest provider ignores `?user=` and signs in its one guest user: the
/// token's `sub` must be the user asked for, or the command would print someone else's token.
/// The token is only read here, not verified: the filter verifies it.
fn check_signed_in_user(token: &str, requested: &str) -> Result<(), String> {
    use base64::Engine as _;
    let wanted = meshgate_core::groupref::user_ref(requested, "default")
        .ok_or_else(|| format!("`{requested}` is not a user name or user entity ref"))?;
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .ok_or_else(|| String::from("the answer's token is not a JWT with a JSON payload"))?;
    let sub = payload.get("sub").and_then(Value::as_str).unwrap_or("");
    match meshgate_core::groupref::user_ref(sub, "default") {
        Some(signed_in) if signed_in == wanted => Ok(()),
        _ => Err(format!(
            "the backend signed in `{sub}`, not `{wanted}`: a real Backstage's guest provider \
             signs in its one guest user whatever `--user` says; sign in as that user in \
             Backstage instead"
        )),
    }
}

/// `NAME=JSON`; a value that is not JSON is taken as a string so `--claim tenant=acme` works.
fn claim(arg: &str) -> Result<(String, Value), CliError> {
    let (name, raw) = arg
        .split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| CliError::InvalidClaim {
            arg: arg.to_owned(),
        })?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use base64::Engine as _;
    use serde_json::json;

    use super::super::tests::{env, run_args};
    use super::*;
    use crate::issuer::test_keys::{shared_keyset, temp_dir};

    fn parse_args(args: &[&str]) -> Result<TokenCommand, CliError> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        read_token(&mut Args::new(&TOKEN, &args), &env())
    }

    fn parse_backstage(args: &[String]) -> Result<BackstageSignIn, CliError> {
        read_backstage(&mut Args::new(&TOKEN_BACKSTAGE, args))
    }

    #[test]
    fn defaults_fill_in_audience_alg_ttl_and_key_file() {
        let command = parse_args(&["--sub", "alice"]).unwrap();
        assert_eq!(command.keys, Path::new(".meshgate/demo/issuer-keys.json"));
        let mut expected = MintRequest::new("alice", env().now);
        expected.audiences = vec!["meshgate-demo".into()];
        assert_eq!(command.request, expected);
    }

    #[test]
    fn every_option_reaches_the_request() {
        let command = parse_args(&[
            "--keys=/k.json",
            "--sub",
            "alice",
            "--groups",
            "a, b",
            "--groups=c",
            "--aud",
            "x,y",
            "--aud",
            "z",
            "--alg",
            "ES256",
            "--ttl",
            "60",
            "--iat-offset",
            "-100",
            "--nbf-offset",
            "-30",
            "--exp-offset=-5",
            "--no-exp",
            "--iss",
            "https://other",
            "--kid",
            "k9",
            "--unpublished-key",
            "--email",
            "a@example.com",
            "--claim",
            "n=3",
            "--claim",
            "tenant=acme",
            "--claim",
            "obj={\"a\":[1]}",
            "--hs-secret",
            "s3cret",
        ])
        .unwrap();
        assert_eq!(command.keys, Path::new("/k.json"));
        let req = command.request;
        assert_eq!(req.groups, ["a", "b", "c"]);
        assert_eq!(req.audiences, ["x", "y", "z"]);
        assert_eq!(req.alg, "ES256");
        assert_eq!(
            (
                req.ttl_s,
                req.iat_offset_s,
                req.nbf_offset_s,
                req.exp_offset_s
            ),
            (60, -100, Some(-30), Some(-5))
        );
        assert!(req.no_exp && req.use_unpublished_key);
        assert_eq!(req.issuer_override.as_deref(), Some("https://other"));
        assert_eq!(req.kid_override.as_deref(), Some("k9"));
        assert_eq!(req.email.as_deref(), Some("a@example.com"));
        assert_eq!(
            Value::Object(req.extra_claims),
            json!({"n": 3, "tenant": "acme", "obj": {"a": [1]}})
        );
        assert_eq!(req.hs_secret.as_deref(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let cases: [(&[&str], &str); 7] = [
            (&[], "option `--sub` is required"),
            (&["--sub"], "option `--sub` needs a value"),
            (
                &["--sub", "a", "--ttl", "soon"],
                "`--ttl` needs a whole number",
            ),
            (&["--sub", "a", "--bogus"], "unknown option `--bogus`"),
            (&["--sub", "a", "stray"], "unexpected argument `stray`"),
            (&["--sub", "a", "--claim", "=1"], "claim `=1`"),
            (
                &["--sub", "a", "--no-exp=1"],
                "option `--no-exp` takes no value",
            ),
        ];
        for (args, message) in cases {
            let err = parse_args(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(message), "{args:?}: {err}");
        }
    }

    #[test]
    fn backstage_command_lines() {
        let args =
            |list: &[&str]| -> Vec<String> { list.iter().map(|a| (*a).to_owned()).collect() };
        assert_eq!(
            parse_backstage(&args(&["--backstage", "--user", "alice"])).unwrap(),
            BackstageSignIn {
                url: DEMO_BACKSTAGE_URL.into(),
                user: "alice".into(),
                ent: false
            }
        );
        assert_eq!(
            parse_backstage(&args(&[
                "--backstage",
                "--user=user:default/bob",
                "--ent",
                "--backstage-url",
                "http://127.0.0.1:7007/"
            ]))
            .unwrap(),
            BackstageSignIn {
                url: "http://127.0.0.1:7007".into(),
                user: "user:default/bob".into(),
                ent: true
            }
        );
        let cases: [(&[&str], &str); 4] = [
            (&["--backstage"], "option `--user` is required"),
            (&["--backstage", "--user", "a", "--sub", "a"], "`--sub`"),
            (
                &["--backstage", "--user", "a", "--bogus"],
                "unknown option `--bogus`",
            ),
            (&["--backstage=1", "--user", "a"], "takes no value"),
        ];
        for (list, message) in cases {
            let err = parse_backstage(&args(list)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{list:?}");
            assert!(err.to_string().contains(message), "{list:?}: {err}");
        }
    }

    #[test]
    fn a_token_for_another_user_than_asked_is_refused() {
        let token = |payload: &str| {
            let part = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
            format!("e30.{part}.sig")
        };
        for (sub, requested) in [
            ("user:default/alice", "alice"),
            ("user:default/Alice", "user:default/alice"),
            ("user:dev/bob", "user:dev/bob"),
        ] {
            let payload = format!(r#"{{"sub":"{sub}"}}"#);
            assert_eq!(
                check_signed_in_user(&token(&payload), requested),
                Ok(()),
                "{sub}"
            );
        }
        for (payload, requested, needle) in [
            (
                r#"{"sub":"user:development/guest"}"#,
                "alice",
                "signed in `user:development/guest`",
            ),
            (
                r#"{"sub":"user:default/alice"}"#,
                "bob",
                "not `user:default/bob`",
            ),
            (r#"{"iss":"x"}"#, "alice", "signed in ``"),
            ("not json", "alice", "not a JWT"),
        ] {
            let err = check_signed_in_user(&token(payload), requested).unwrap_err();
            assert!(err.contains(needle), "{payload}: {err}");
        }
        assert!(check_signed_in_user("nodots", "alice").is_err());
        assert!(check_signed_in_user(&token("{}"), "group:default/x").is_err());
    }

    #[test]
    fn backstage_sign_in_needs_a_backend() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (code, out, err) = run_args(
            &[
                "token",
                "--backstage",
                "--user",
                "alice",
                "--backstage-url",
                &url,
            ],
            &env(),
        );
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("/api/auth/guest/refresh"), "{err}");
        assert!(err.contains("./build.sh demo"), "{err}");
    }

    #[test]
    fn missing_key_file_says_to_start_the_demo() {
        let dir = temp_dir("token-missing");
        let cli_env = CliEnv {
            demo_dir: Some(dir.clone()),
            ..env()
        };
        let (code, out, err) = run_args(&["token", "--sub", "alice"], &cli_env);
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("./build.sh demo"), "{err}");
        assert!(err.contains("issuer-keys.json"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn prints_one_signed_token_line() {
        let dir = temp_dir("token-print");
        shared_keyset().save(dir.join("issuer-keys.json")).unwrap();
        let cli_env = CliEnv {
            demo_dir: Some(dir.clone()),
            ..env()
        };
        let (code, out, err) = run_args(
            &[
                "token", "--sub", "alice", "--groups", "data-eng", "--alg", "EdDSA",
            ],
            &cli_env,
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out.lines().count(), 1);
        let token = out.trim_end();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> Value {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        assert_eq!(
            decode(parts[0]),
            json!({"alg": "EdDSA", "kid": "eddsa-1", "typ": "JWT"})
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], "meshgate-demo");
        assert_eq!(claims["groups"], json!(["data-eng"]));
        assert_eq!(claims["exp"], env().now + 3600);

        let (code, _, err) = run_args(&["token", "--sub", "alice", "--alg", "HS256"], &cli_env);
        assert_eq!(code, 1);
        assert!(err.contains("needs a shared secret"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
