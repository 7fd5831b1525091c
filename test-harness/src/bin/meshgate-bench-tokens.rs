//! `meshgate-bench-tokens`: mints many distinct valid tokens, one per line, for the cold-token
//! mix of `scripts/bench.sh` (`test-harness/bench/cold.lua` sends them round robin).
//!
//! `meshgate token` mints one token per process; 10,000 process starts would take longer
//! than the benchmark itself. The key file is loaded once and every token differs by its
//! `sub` (`bench-00000`, `bench-00001`, ...), so each one must be verified on its own.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use meshgate_control_plane::cli::DEMO_AUDIENCE;
use meshgate_control_plane::issuer::{KeySet, MintRequest};
use meshgate_test_support::unix_now;

const USAGE: &str = "\
usage: meshgate-bench-tokens --keys PATH --out FILE [--alg RS256] [--count 10000]
                             [--groups data-eng] [--aud meshgate-demo] [--ttl 21600]

Mints COUNT distinct valid tokens (sub bench-00000, bench-00001, ...) with the issuer key
file's active key for ALG, and writes them to FILE, one per line.
";

#[derive(Debug)]
struct Args {
    keys: PathBuf,
    out: PathBuf,
    alg: String,
    count: usize,
    groups: Vec<String>,
    audience: String,
    ttl_s: i64,
}

#[derive(Debug, thiserror::Error)]
enum BenchTokensError {
    #[error("unknown argument `{arg}`")]
    Unknown { arg: String },
    #[error("option `{flag}` needs a value")]
    MissingValue { flag: String },
    #[error("option `{flag}` is required")]
    Required { flag: &'static str },
    #[error("option `{flag}` needs a whole number, got `{value}`")]
    BadNumber { flag: String, value: String },
    #[error(transparent)]
    KeySet(#[from] meshgate_control_plane::issuer::KeySetError),
    #[error("minting token {index}: {source}")]
    Mint {
        index: usize,
        source: meshgate_control_plane::issuer::MintError,
    },
    #[error("a minting thread stopped unexpectedly")]
    Worker,
    #[error("writing `{}`: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let parsed = match parse(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("meshgate-bench-tokens: error: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("meshgate-bench-tokens: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Args, BenchTokensError> {
    let mut keys = None;
    let mut out = None;
    let mut parsed = Args {
        keys: PathBuf::new(),
        out: PathBuf::new(),
        alg: "RS256".to_owned(),
        count: 10_000,
        groups: vec!["data-eng".to_owned()],
        audience: DEMO_AUDIENCE.to_owned(),
        ttl_s: 6 * 3600,
    };
    let mut items = args.iter();
    while let Some(flag) = items.next() {
        let mut value = || {
            items
                .next()
                .cloned()
                .ok_or_else(|| BenchTokensError::MissingValue { flag: flag.clone() })
        };
        match flag.as_str() {
            "--keys" => keys = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--alg" => parsed.alg = value()?,
            "--count" => parsed.count = number(flag, &value()?)?,
            "--groups" => {
                parsed.groups = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|group| !group.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--aud" => parsed.audience = value()?,
            "--ttl" => parsed.ttl_s = number(flag, &value()?)?,
            _ => return Err(BenchTokensError::Unknown { arg: flag.clone() }),
        }
    }
    parsed.keys = keys.ok_or(BenchTokensError::Required { flag: "--keys" })?;
    parsed.out = out.ok_or(BenchTokensError::Required { flag: "--out" })?;
    Ok(parsed)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, BenchTokensError> {
    value.parse().map_err(|_| BenchTokensError::BadNumber {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })
}

fn run(args: &Args) -> Result<(), BenchTokensError> {
    let keys = KeySet::load(&args.keys)?;
    let now = unix_now();
    // RSA signing takes milliseconds per token: one chunk of the range per CPU.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = args.count.div_ceil(threads).max(1);
    let starts: Vec<usize> = (0..args.count).step_by(chunk).collect();
    let chunks: Vec<Result<String, BenchTokensError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = starts
            .iter()
            .map(|&start| {
                let end = start.saturating_add(chunk).min(args.count);
                let keys = &keys;
                scope.spawn(move || mint_range(keys, args, now, start..end))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(BenchTokensError::Worker))
            })
            .collect()
    });
    let mut text = String::new();
    for chunk in chunks {
        text.push_str(&chunk?);
    }
    let write_err = |source| BenchTokensError::Write {
        path: args.out.clone(),
        source,
    };
    let mut file = std::fs::File::create(&args.out).map_err(write_err)?;
    file.write_all(text.as_bytes()).map_err(write_err)?;
    Ok(())
}

/// Tokens `range`, one per line.
fn mint_range(
    keys: &KeySet,
    args: &Args,
    now: i64,
    range: std::ops::Range<usize>,
) -> Result<String, BenchTokensError> {
    let mut text = String::new();
    for index in range {
        let sub = format!("bench-{index:05}");
        let mut request = MintRequest::new(sub.clone(), now);
        request.alg.clone_from(&args.alg);
        request.groups.clone_from(&args.groups);
        request.audiences = vec![args.audience.clone()];
        request.ttl_s = args.ttl_s;
        request.email = Some(format!("{sub}@example.com"));
        let token = keys
            .mint(&request)
            .map_err(|source| BenchTokensError::Mint { index, source })?;
        text.push_str(&token);
        text.push('\n');
    }
    Ok(text)
}
