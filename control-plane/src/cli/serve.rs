//! `meshgate serve`: the snapshot server. `meshgate snapshot build`: one sync, written to a
//! file, with the server's code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::args::Args;
use super::err::CliError;
use super::{write_out, CliEnv, Command};
use crate::serve::{stderr_log, Published, ServeConfig, Server, SyncStatus, Syncer};
use crate::snapshot::load_signing_key;

/// A parsed `serve` command line.
pub(super) struct ServeCommand {
    config_path: PathBuf,
}

/// A parsed `snapshot build` command line.
pub(super) struct BuildCommand {
    config_path: PathBuf,
    out_path: PathBuf,
    force: bool,
}

pub(super) fn parse_serve(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut config_path: Option<PathBuf> = None;
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--config" => config_path = Some(flag.value()?.into()),
            _ => return Err(flag.unhandled()),
        }
    }
    let config_path = config_path.ok_or(CliError::MissingFlag { flag: "--config" })?;
    Ok(Command::Serve(ServeCommand { config_path }))
}

pub(super) fn parse_build(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let (mut config_path, mut out_path): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut force = false;
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--config" => config_path = Some(flag.value()?.into()),
            "--out" => out_path = Some(flag.value()?.into()),
            "--force" => force = true,
            _ => return Err(flag.unhandled()),
        }
    }
    let config_path = config_path.ok_or(CliError::MissingFlag { flag: "--config" })?;
    let out_path = out_path.ok_or(CliError::MissingFlag { flag: "--out" })?;
    Ok(Command::SnapshotBuild(BuildCommand {
        config_path,
        out_path,
        force,
    }))
}

/// Runs the server until it stops (the process is normally ended by a signal).
pub(super) fn serve(command: ServeCommand) -> Result<u8, CliError> {
    let config_path = command.config_path;
    let config = ServeConfig::load(&config_path)?;
    let server = Server::start(config)?;
    while server.is_running() {
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(CliError::ServerStopped)
}

/// `snapshot build --config FILE --out FILE [--force]`. An existing `--out` file signed with the
/// same key counts as the current snapshot: same content keeps its version and the file is
/// left alone, and the shrink guard compares with it. A read a guard refuses writes nothing
/// and fails, unless `--force`.
pub(super) fn build(command: BuildCommand, out: &mut dyn Write) -> Result<u8, CliError> {
    let BuildCommand {
        config_path,
        out_path,
        force,
    } = command;
    let config = ServeConfig::load(&config_path)?;
    let key = load_signing_key(&config.signing_key_file).map_err(CliError::SigningKey)?;
    let mut syncer = Syncer::new(&config, key, stderr_log());
    let existing = std::fs::read(&out_path).ok().and_then(|bytes| {
        Published::from_bytes(
            &config.snapshot_name,
            Arc::from(bytes),
            syncer.trusted_key(),
        )
        .ok()
    });
    if let Some(existing) = existing {
        syncer = syncer.with_current(existing);
    }
    let report = syncer.run_with(force);
    let published = match (report.status, syncer.current()) {
        (SyncStatus::Updated | SyncStatus::Unchanged, Some(published)) => Arc::clone(published),
        _ => return Err(CliError::SnapshotNotBuilt { path: out_path }),
    };
    if report.status == SyncStatus::Updated {
        write_atomically(&out_path, &published.bytes)?;
    }
    let what = if report.status == SyncStatus::Updated {
        "wrote"
    } else {
        "unchanged"
    };
    write_out(
        out,
        &format!(
            "{what} `{}`: snapshot `{}` version {}, {} bytes, {} users, {} groups, {} owned{}\n",
            out_path.display(),
            published.name,
            published.version,
            published.bytes.len(),
            published.users,
            published.groups,
            published.owned,
            if published.has_rules { ", rules" } else { "" },
        ),
    )?;
    Ok(0)
}

/// Writes next to `path` and renames over it, so a reader never sees half a snapshot.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let error = |source| CliError::WriteSnapshot {
        path: path.to_owned(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(source) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        // Best effort: don't leave a partial file behind.
        let _ = std::fs::remove_file(&temporary);
        return Err(error(source));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use meshgate_core::snapshot::{DecodeLimits, Snapshot};

    use super::super::tests::{env, run_args};
    use crate::serve::fixture::{Fixture, ORG};

    fn write_config(fixture: &Fixture, extra: &str) -> String {
        let path = fixture.dir.join("cp.yaml");
        std::fs::write(
            &path,
            format!("catalog: {{directory: catalog}}\nrules_file: rules.yaml\nsigning_key_file: key.json\n{extra}"),
        )
        .unwrap();
        path.display().to_string()
    }

    #[test]
    fn snapshot_build_writes_then_keeps_then_replaces() {
        let fixture = Fixture::new("cli-build");
        let config = write_config(&fixture, "snapshot_name: edge\n");
        let out_path = fixture.dir.join("out/edge.snap");
        std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
        let out = out_path.display().to_string();
        let args = ["snapshot", "build", "--config", &config, "--out", &out];

        let (code, stdout, stderr) = run_args(&args, &env());
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with(&format!("wrote `{out}`: snapshot `edge` version "))
                && stdout.ends_with(" bytes, 2 users, 2 groups, 1 owned, rules\n"),
            "{stdout}"
        );
        let bytes = std::fs::read(&out_path).unwrap();
        let snapshot = Snapshot::decode(
            &bytes,
            &[fixture.key.trusted_key()],
            &DecodeLimits::default(),
        )
        .unwrap();
        assert!(snapshot.rules_json().is_some());

        // Same catalog: the file and its version stay.
        let (code, stdout, _) = run_args(&args, &env());
        assert_eq!(code, 0);
        let version = snapshot.version().to_string();
        assert!(
            stdout.starts_with("unchanged `") && stdout.contains(&version),
            "{stdout}"
        );
        assert_eq!(std::fs::read(&out_path).unwrap(), bytes);

        // Changed catalog: replaced with a later version.
        fixture.write_org(&ORG.replace("members: [bob]", "members: []"));
        let (code, stdout, _) = run_args(&args, &env());
        assert_eq!(code, 0);
        assert!(stdout.starts_with("wrote `"), "{stdout}");
        let replaced = std::fs::read(&out_path).unwrap();
        let newer = Snapshot::decode(
            &replaced,
            &[fixture.key.trusted_key()],
            &DecodeLimits::default(),
        )
        .unwrap();
        assert!(newer.is_newer_than(&snapshot));
        let leftovers = std::fs::read_dir(out_path.parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(leftovers, 1);
    }

    /// The shrink guard compares a read with the file it replaces in the same units: a
    /// catalog whose owners include users (which the snapshot's group table holds) is
    /// "unchanged" the second time, not a shrink.
    #[test]
    fn snapshot_build_over_its_own_file_with_user_owners_is_unchanged() {
        let fixture = Fixture::new("cli-build-user-owners");
        fixture.write_org(&format!(
            "{ORG}---\nkind: Component\nmetadata: {{name: adhoc, annotations: {{meshgate.io/airflow-dag: adhoc}}}}\n\
             spec: {{type: pipeline, owner: user:alice}}\n"
        ));
        let config = write_config(&fixture, "");
        let out = fixture.dir.join("edge.snap").display().to_string();
        let args = ["snapshot", "build", "--config", &config, "--out", &out];
        let (code, stdout, stderr) = run_args(&args, &env());
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("3 groups, 2 owned"), "{stdout}");
        let (code, stdout, stderr) = run_args(&args, &env());
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.starts_with("unchanged `"), "{stdout}");
    }

    #[test]
    fn snapshot_build_reads_the_configured_annotation_keys() {
        let fixture = Fixture::new("cli-build-annotations");
        fixture.write_org(&format!(
            "{ORG}---\nkind: Component\nmetadata: {{name: ci, annotations: {{acme.io/ci-pipeline: acme/deploy}}}}\nspec: {{type: pipeline, owner: data-eng}}\n"
        ));
        let config = fixture.dir.join("cp.yaml");
        std::fs::write(
            &config,
            "catalog:\n  directory: catalog\n  ownership_annotations:\n    buildkite.pipeline: [acme.io/ci-pipeline]\nsigning_key_file: key.json\n",
        )
        .unwrap();
        let out_path = fixture.dir.join("x.snap");
        let (config, out) = (config.display().to_string(), out_path.display().to_string());
        let (code, stdout, stderr) = run_args(
            &["snapshot", "build", "--config", &config, "--out", &out],
            &env(),
        );
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(" 2 owned"), "{stdout}");
        let snapshot = Snapshot::decode(
            &std::fs::read(&out_path).unwrap(),
            &[fixture.key.trusted_key()],
            &DecodeLimits::default(),
        )
        .unwrap();
        assert!(snapshot
            .owners_of("buildkite.pipeline", "acme/deploy")
            .is_some());
    }

    #[test]
    fn snapshot_build_and_serve_errors() {
        let fixture = Fixture::new("cli-build-errors");
        let config = write_config(&fixture, "");
        let out = fixture.dir.join("x.snap").display().to_string();
        let bad = write_config(&fixture, "resync_interval_s: 0\n");
        let cases: Vec<(Vec<&str>, u8, &str)> = vec![
            (
                vec!["snapshot", "build", "--out", &out],
                2,
                "option `--config` is required",
            ),
            (
                vec!["snapshot", "build", "--config", &config],
                2,
                "option `--out` is required",
            ),
            (
                vec![
                    "snapshot", "build", "--config", &config, "--out", &out, "--x",
                ],
                2,
                "unknown option `--x`",
            ),
            (vec!["serve"], 2, "option `--config` is required"),
            (
                vec!["serve", "--config", &bad],
                1,
                "`resync_interval_s`: must be",
            ),
            (
                vec!["snapshot", "build", "--config", &bad, "--out", &out],
                1,
                "`resync_interval_s`: must be",
            ),
        ];
        for (args, code, expected) in cases {
            let (got, stdout, stderr) = run_args(&args, &env());
            assert_eq!((got, stdout.as_str()), (code, ""), "{args:?}: {stderr}");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
        // A sync that fails writes nothing.
        let config = write_config(&fixture, "");
        std::fs::write(&fixture.rules, "- nope\n").unwrap();
        let (code, _, stderr) = run_args(
            &["snapshot", "build", "--config", &config, "--out", &out],
            &env(),
        );
        assert_eq!(code, 1);
        assert!(stderr.contains("no snapshot written"), "{stderr}");
        assert!(!std::path::Path::new(&out).exists());
        // A missing key is named.
        std::fs::remove_file(&fixture.key_file).unwrap();
        let (code, _, stderr) = run_args(&["serve", "--config", &config], &env());
        assert_eq!(code, 1);
        assert!(
            stderr.contains("signing_key_file") && stderr.contains("key.json"),
            "{stderr}"
        );
    }
}
