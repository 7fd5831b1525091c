//! The `meshgate` command line. `main.rs` only gathers the process inputs; everything else is
//! here so that it can be tested without spawning processes.

mod access;
mod args;
mod audit;
mod check;
mod err;
mod keygen;
mod keys;
mod serve;
mod show;
mod table;
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

/// The help text `meshgate help` prints, built from the command table: every command and
/// every option the parser accepts.
pub fn usage() -> String {
    table::usage()
}

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
    match parse(args, env).and_then(|command| execute(command, env, out)) {
        Ok(code) => code,
        Err(error) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = report(&error, err);
            error.exit_code()
        }
    }
}

/// A command line, read and checked, before anything is run.
enum Command {
    Help,
    Token(token::TokenCommand),
    BackstageToken(token::BackstageSignIn),
    KeysInit(keys::InitCommand),
    Check(check::CheckCommand),
    Validate(check::ValidateCommand),
    Keygen(keygen::KeygenCommand),
    Serve(serve::ServeCommand),
    SnapshotBuild(serve::BuildCommand),
    SnapshotShow(show::ShowCommand),
    AuditVerify(audit::VerifyCommand),
    Access(access::AccessCommand),
}

/// Finds the command in the table and reads its arguments against its entry.
fn parse(args: &[String], env: &CliEnv) -> Result<Command, CliError> {
    let Some((spec, rest)) = table::find(args) else {
        // `keys burn`, `snapshot serve`: name both words of a two-word command.
        let named = args.iter().take(2).cloned().collect::<Vec<_>>();
        let two_words = table::COMMANDS.iter().any(|spec| {
            spec.words.len() > 1 && spec.words.first().copied() == named.first().map(String::as_str)
        });
        let command = if two_words {
            named.join(" ")
        } else {
            named.first().cloned().unwrap_or_default()
        };
        return Err(CliError::UnknownCommand { command });
    };
    (spec.parse)(&mut args::Args::new(spec, rest), env)
}

fn execute(command: Command, env: &CliEnv, out: &mut dyn Write) -> Result<u8, CliError> {
    match command {
        Command::Help => {
            write_out(out, &usage())?;
            // Asking for help is not a successful run of a command.
            Ok(2)
        }
        Command::Token(command) => token::run(command, out).map(|()| 0),
        Command::BackstageToken(sign_in) => token::run_backstage(&sign_in, out).map(|()| 0),
        Command::KeysInit(command) => keys::init(command, out).map(|()| 0),
        Command::Check(command) => check::check(command, env.now, out),
        Command::Validate(command) => check::validate(&command, out),
        Command::Keygen(command) => keygen::run(command, out).map(|()| 0),
        Command::Serve(command) => serve::serve(command),
        Command::SnapshotBuild(command) => serve::build(command, out),
        Command::SnapshotShow(command) => show::run(&command, out),
        Command::AuditVerify(command) => audit::verify(&command, out),
        Command::Access(command) => access::run(command, out),
    }
}

fn report(error: &CliError, err: &mut dyn Write) -> std::io::Result<()> {
    writeln!(err, "meshgate: error: {error}")?;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        writeln!(err, "  caused by: {cause}")?;
        source = cause.source();
    }
    if error.is_usage_error() {
        writeln!(err)?;
        err.write_all(usage().as_bytes())?;
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
            assert_eq!(out, usage());
            assert_eq!(err, "");
        }
    }

    /// The section of the help that lists `spec`'s options.
    fn options_section<'a>(help: &'a str, spec: &args::CommandSpec) -> &'a str {
        let heading = format!("\n{} options{}:\n", spec.name(), spec.note);
        let start = help.find(&heading).map(|at| at + heading.len());
        let section = start.and_then(|start| help.get(start..)).unwrap_or("");
        section.split("\n\n").next().unwrap_or("")
    }

    #[test]
    fn help_lists_every_command_and_every_option_the_parser_accepts() {
        let help = usage();
        for spec in table::COMMANDS {
            let line = format!("\n  meshgate {} {}", spec.name(), spec.synopsis);
            assert!(help.contains(line.trim_end()), "{line}\n{help}");
            let section = options_section(&help, spec);
            for option in spec.options {
                let mut listed = format!("  {}", option.name);
                if let Some(value) = option.value {
                    listed = format!("{listed} {value}");
                }
                assert!(
                    section
                        .lines()
                        .any(|line| line == listed || line.starts_with(&format!("{listed} "))),
                    "`{}` lacks `{listed}`:\n{section}",
                    spec.name()
                );
            }
        }
        // Missing from the hand-written help before it was built from the table.
        assert!(options_section(&help, &table::CHECK).contains("  --snapshot FILE "));
    }

    #[test]
    fn the_parser_reaches_every_command_and_handles_every_option_of_the_table() {
        let env = env();
        for spec in table::COMMANDS {
            let mut base: Vec<String> = spec.words.iter().map(|w| (*w).to_owned()).collect();
            base.extend(spec.form.map(str::to_owned));
            // The command is found, and its own parser refuses what its table lacks.
            let (found, _) = table::find(&base).unwrap();
            assert_eq!(found.name(), spec.name());
            if spec.words != ["help"] {
                let mut args = base.clone();
                args.push("--no-such-option".into());
                match parse(&args, &env) {
                    Err(CliError::UnknownFlag { flag }) => assert_eq!(flag, "--no-such-option"),
                    other => panic!("{args:?}: {:?}", other.err()),
                }
            }
            for option in spec.options {
                let mut args = base.clone();
                if Some(option.name) != spec.form {
                    args.push(option.name.to_owned());
                }
                args.extend(option.value.map(|_| "1".to_owned()));
                let (found, _) = table::find(&args).unwrap();
                assert_eq!(found.name(), spec.name(), "{args:?}");
                // Any outcome but "unknown option" or a value mix-up: a missing required
                // option, a value that does not parse, or a command ready to run.
                if let Err(
                    error @ (CliError::UnknownFlag { .. }
                    | CliError::MissingValue { .. }
                    | CliError::UnexpectedValue { .. }
                    | CliError::UnexpectedArgument { .. }),
                ) = parse(&args, &env)
                {
                    panic!("{args:?}: {error}");
                }
            }
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
