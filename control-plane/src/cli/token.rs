//! `meshgate token`: mint a token with the demo issuer's keys and print it.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::args::{comma_list, Flags};
use super::err::CliError;
use super::{default_keys_path, write_out, CliEnv, DEMO_AUDIENCE};
use crate::issuer::{KeySet, MintRequest};

/// A parsed `token` command line.
#[derive(Debug, PartialEq)]
struct TokenCommand {
    keys: PathBuf,
    request: MintRequest,
}

pub(super) fn run(args: &[String], env: &CliEnv, out: &mut dyn Write) -> Result<(), CliError> {
    let command = parse(args, env)?;
    if !command.keys.exists() {
        return Err(CliError::KeysMissing { path: command.keys });
    }
    let token = KeySet::load(&command.keys)?.mint(&command.request)?;
    write_out(out, &format!("{token}\n"))
}

fn parse(args: &[String], env: &CliEnv) -> Result<TokenCommand, CliError> {
    let mut keys = None;
    let mut sub = None;
    let mut request = MintRequest::new("", env.now);
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag()? {
        match flag.name {
            "--keys" => keys = Some(PathBuf::from(flags.value(&flag)?)),
            "--sub" => sub = Some(flags.value(&flag)?.to_owned()),
            "--groups" => request.groups.extend(comma_list(flags.value(&flag)?)),
            "--aud" => request.audiences.extend(comma_list(flags.value(&flag)?)),
            "--alg" => request.alg = flags.value(&flag)?.to_owned(),
            "--ttl" => request.ttl_s = flags.seconds(&flag)?,
            "--iat-offset" => request.iat_offset_s = flags.seconds(&flag)?,
            "--nbf-offset" => request.nbf_offset_s = Some(flags.seconds(&flag)?),
            "--exp-offset" => request.exp_offset_s = Some(flags.seconds(&flag)?),
            "--no-exp" => request.no_exp = flags.switch(&flag)?,
            "--iss" => request.issuer_override = Some(flags.value(&flag)?.to_owned()),
            "--kid" => request.kid_override = Some(flags.value(&flag)?.to_owned()),
            "--unpublished-key" => request.use_unpublished_key = flags.switch(&flag)?,
            "--email" => request.email = Some(flags.value(&flag)?.to_owned()),
            "--claim" => {
                let (name, value) = claim(flags.value(&flag)?)?;
                request.extra_claims.insert(name, value);
            }
            "--hs-secret" => request.hs_secret = Some(flags.value(&flag)?.as_bytes().to_vec()),
            other => {
                return Err(CliError::UnknownFlag {
                    flag: other.to_owned(),
                })
            }
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
        parse(&args, &env())
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
