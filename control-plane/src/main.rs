//! `meshgate` binary: gathers the arguments, clock and environment, then defers to
//! [`meshgate_control_plane::cli`].

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use meshgate_control_plane::cli::{self, CliEnv};

/// See the `mimalloc` line in Cargo.toml: a sync of a large catalog is allocation-bound.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Lossy conversion rather than a panic on arguments that are not UTF-8.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let env = CliEnv {
        now,
        demo_dir: std::env::var_os("MESHGATE_DEMO_DIR")
            .filter(|dir| !dir.is_empty())
            .map(Into::into),
    };
    // Unlocked handles: `meshgate serve` logs to stderr from its own threads, which would
    // block forever behind a lock held by this thread for the whole run.
    let code = cli::run(&args, &env, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
