//! `meshgate audit verify FILE`: checks an audit log's hash chain (docs/access.md).

use std::io::Write;
use std::path::PathBuf;

use super::args::{Arg, Args};
use super::{CliEnv, CliError, Command};
use crate::audit;

pub(super) struct VerifyCommand {
    path: PathBuf,
}

pub(super) fn parse_verify(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut path = None;
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Operand(operand) => path = Some(PathBuf::from(operand)),
            Arg::Flag(flag) => return Err(flag.unhandled()),
        }
    }
    let path = path.ok_or(CliError::MissingFlag { flag: "FILE" })?;
    Ok(Command::AuditVerify(VerifyCommand { path }))
}

/// 0 when the chain holds, 1 at the first break (named on `out`); an unreadable file is an
/// error (exit 2).
pub(super) fn verify(command: &VerifyCommand, out: &mut dyn Write) -> Result<u8, CliError> {
    let path = &command.path;
    let text = std::fs::read(path).map_err(|source| CliError::AuditUnreadable {
        path: path.clone(),
        source,
    })?;
    let (report, code) = match audit::verify(&text) {
        Ok(verified) => {
            let seqs = match verified.seqs {
                Some((first, last)) => format!(", seq {first} to {last}"),
                None => String::new(),
            };
            (
                format!(
                    "ok: `{}`: {} events{seqs}, chain intact\n",
                    path.display(),
                    verified.lines
                ),
                0,
            )
        }
        Err(broken) => (format!("broken: `{}`, {broken}\n", path.display()), 1),
    };
    out.write_all(report.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Output { source })?;
    Ok(code)
}
