//! `meshgate-harness serve`: runs the mock issuer, the upstream stubs and, when asked, the fake
//! Backstage (catalog API and auth backend) for the demo until the process is killed.

use std::path::PathBuf;
use std::process::ExitCode;

use meshgate_control_plane::cli::default_keys_path;
use meshgate_test_harness::backstage::{read_catalog_dir, sample_catalog_dir, BackstageServer};
use meshgate_test_harness::issuer_server::IssuerServer;
use meshgate_test_harness::ports::HarnessError;
use meshgate_test_harness::upstream::UpstreamServer;

const USAGE: &str = "\
usage: meshgate-harness serve [--issuer-port 18080] [--upstream-port 18081]
                              [--keys PATH] [--issuer URL]
                              [--backstage-port 17007 [--catalog DIR]]

Runs the mock OIDC issuer and the tool-shaped upstream stubs on 127.0.0.1 until killed.
  --keys PATH            issuer key file, created if absent (default: $MESHGATE_DEMO_DIR/issuer-keys.json,
                         else .meshgate/demo/issuer-keys.json)
  --issuer URL           iss of tokens and discovery (default: the issuer's own URL, or the key file's)
  --backstage-port PORT  also run a fake Backstage there: its auth backend signs user tokens
                         (/api/auth/guest/refresh?user=alice, JWKS at /api/auth/.well-known/jwks.json,
                         POST /admin/rotate) and its catalog API serves the catalog
  --catalog DIR          the catalog YAML files the fake Backstage serves (default: the sample catalog)
";

struct ServeArgs {
    issuer_port: u16,
    upstream_port: u16,
    keys: PathBuf,
    issuer: Option<String>,
    backstage_port: Option<u16>,
    catalog: Option<PathBuf>,
}

/// The catalog API's bearer token in the demo (the auth routes need none).
const DEMO_CATALOG_TOKEN: &str = "meshgate-demo-catalog";

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error(transparent)]
    Backstage(#[from] meshgate_test_harness::backstage::BackstageError),
}

#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("expected the `serve` command")]
    NoCommand,
    #[error("unknown argument `{arg}`")]
    Unknown { arg: String },
    #[error("option `{flag}` needs a value")]
    MissingValue { flag: String },
    #[error("option `{flag}` needs a port number, got `{value}`")]
    BadPort { flag: String, value: String },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let serve = match parse(&args) {
        Ok(serve) => serve,
        Err(err) => {
            eprintln!("meshgate-harness: error: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("meshgate-harness: error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<ServeArgs, ArgsError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(ArgsError::NoCommand);
    };
    if command != "serve" {
        return Err(ArgsError::Unknown {
            arg: command.clone(),
        });
    }
    let demo_dir = std::env::var_os("MESHGATE_DEMO_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let mut serve = ServeArgs {
        issuer_port: 18080,
        upstream_port: 18081,
        keys: default_keys_path(demo_dir.as_deref()),
        issuer: None,
        backstage_port: None,
        catalog: None,
    };
    let mut items = rest.iter();
    while let Some(flag) = items.next() {
        let mut value = || {
            items
                .next()
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue { flag: flag.clone() })
        };
        match flag.as_str() {
            "--issuer-port" => serve.issuer_port = port(flag, &value()?)?,
            "--upstream-port" => serve.upstream_port = port(flag, &value()?)?,
            "--keys" => serve.keys = PathBuf::from(value()?),
            "--issuer" => serve.issuer = Some(value()?),
            "--backstage-port" => serve.backstage_port = Some(port(flag, &value()?)?),
            "--catalog" => serve.catalog = Some(PathBuf::from(value()?)),
            _ => return Err(ArgsError::Unknown { arg: flag.clone() }),
        }
    }
    Ok(serve)
}

fn port(flag: &str, value: &str) -> Result<u16, ArgsError> {
    value.parse().map_err(|_| ArgsError::BadPort {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })
}

fn run(serve: ServeArgs) -> Result<(), RunError> {
    let issuer = IssuerServer::start(
        &format!("127.0.0.1:{}", serve.issuer_port),
        serve.keys,
        serve.issuer,
    )?;
    let upstream = UpstreamServer::start(&format!("127.0.0.1:{}", serve.upstream_port))?;
    let backstage = match serve.backstage_port {
        Some(port) => {
            let dir = serve.catalog.unwrap_or_else(sample_catalog_dir);
            let yaml = read_catalog_dir(&dir)?;
            Some(BackstageServer::start(
                &format!("127.0.0.1:{port}"),
                DEMO_CATALOG_TOKEN,
                &yaml,
            )?)
        }
        None => None,
    };
    println!("issuer listening on {}", issuer.url());
    println!("upstream stubs listening on {}", upstream.url());
    if let Some(backstage) = &backstage {
        println!("fake Backstage listening on {}", backstage.url());
    }
    // The servers run on their own threads; SIGTERM or SIGINT ends the process.
    loop {
        std::thread::park();
    }
}
