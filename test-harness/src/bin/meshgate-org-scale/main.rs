//! Catalog → edge at organisation scale, measured in one run: generates a catalog with
//! `orggen`, serves it with the release `meshgate serve` (directory source, resync every
//! second), puts a real Envoy (`dist/meshgate.wasm`, snapshot poll every second) in front of
//! it through a byte-counting proxy, and measures control-plane memory and sync times, the
//! snapshot's size and correctness for every user and owned entity, Envoy's memory before,
//! after the first load and over reloads, the time from a catalog change to every worker
//! denying, and the bytes each change moves to the sidecar.
//!
//!   cargo build --release -p meshgate-control-plane -p meshgate-test-harness && ./build.sh
//!   target/release/meshgate-org-scale --quick
//!   target/release/meshgate-org-scale            # the scale; minutes
//!
//! Exit status: 0 when everything was measured and the snapshot is correct, 1 on a mismatch
//! or an error, 3 when the deadline or the memory limit stopped the run (the figures so far are
//! still printed and written).

mod args;
mod phases;
mod report;
mod session;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use meshgate_test_harness::orggen::{Nesting, Org, Reference};

use crate::args::{parse, Args, ArgsError, USAGE};
use crate::phases::{choices, Phases};
use crate::report::{CatalogFigures, Figures};
use crate::session::{Session, Stop};

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&raw) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("meshgate-org-scale: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut figures = Figures {
        snapshot: args.snapshot.clone(),
        command: format!("meshgate-org-scale {}", raw.join(" ")),
        ..Figures::default()
    };
    if let Some(dir) = &args.generate_only {
        return generate_only(&args, dir);
    }
    let work_dir = std::env::temp_dir().join(format!("meshgate-org-scale-{}", std::process::id()));
    let outcome = run(&args, &work_dir, &mut figures);
    if let Err(stop) = &outcome {
        figures.stopped_early = Some(stop.to_string());
    }
    print!("{}", figures.table());
    if let Err(error) = figures.write_json(&args.out) {
        eprintln!(
            "meshgate-org-scale: cannot write `{}`: {error}",
            args.out.display()
        );
    } else {
        println!("figures written to {}", args.out.display());
    }
    // A failed run keeps its catalog and logs for a look.
    if args.keep || outcome.as_ref().is_err_and(|stop| !stop.is_limit()) {
        println!("catalog and logs kept in {}", work_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    let mismatches = figures.correctness.as_ref().map_or(0, |c| c.total());
    if mismatches > 0 {
        eprintln!("meshgate-org-scale: {mismatches} snapshot mismatches");
        for sample in figures.correctness.iter().flat_map(|c| &c.samples) {
            eprintln!("  {sample}");
        }
        return ExitCode::FAILURE;
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) if stop.is_limit() => ExitCode::from(3),
        Err(stop) => {
            eprintln!("meshgate-org-scale: {stop}");
            ExitCode::FAILURE
        }
    }
}

/// `--generate-only DIR`: the catalog alone, for profiling the control plane without Envoy.
fn generate_only(args: &Args, dir: &Path) -> ExitCode {
    let written = Org::generate(&args.spec)
        .map_err(|e| e.to_string())
        .and_then(|org| {
            org.write_dir(dir).map_err(|e| e.to_string())?;
            Ok(org)
        });
    match written {
        Ok(org) => {
            println!(
                "catalog: {} users, {} groups ({} levels), {} owned entities written to {}",
                org.user_count(),
                org.group_count(),
                org.depth(),
                org.owned_count(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("meshgate-org-scale: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, work_dir: &Path, figures: &mut Figures) -> Result<(), Stop> {
    let _ = std::fs::remove_dir_all(work_dir);
    let catalog = work_dir.join("catalog");
    let started = Instant::now();
    let mut org = Org::generate(&args.spec).map_err(|e| Stop::failed("generate", e))?;
    let reference = Reference::build(&org);
    org.write_dir(&catalog)
        .map_err(|e| Stop::failed("write the catalog", e))?;
    if args.backstage_json {
        org.write_backstage_json(&work_dir.join("backstage-entities.json"))
            .map_err(|e| Stop::failed("write the Backstage JSON", e))?;
    }
    figures.catalog = CatalogFigures {
        users: org.user_count(),
        groups: org.group_count(),
        entities: org.owned_count(),
        nesting: match args.spec.nesting {
            Nesting::Shallow => "shallow".into(),
            Nesting::Deep => "deep".into(),
        },
        depth: org.depth(),
        files: org.files().len(),
        yaml_bytes: dir_bytes(&catalog),
        seed: args.spec.seed,
        huge_group_members: args.spec.huge_group_members,
        generate_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    println!(
        "catalog: {} users, {} groups ({}, {} levels), {} owned entities, {} files, {} bytes, in {} ms",
        figures.catalog.users,
        figures.catalog.groups,
        figures.catalog.nesting,
        figures.catalog.depth,
        figures.catalog.entities,
        figures.catalog.files,
        figures.catalog.yaml_bytes,
        figures.catalog.generate_ms
    );
    let mut session = Session::start(
        work_dir,
        args.concurrency,
        args.deadline,
        args.max_cp_rss_mib,
        &args.meshgate,
        &args.snapshot,
    )?;
    let mut phases = Phases {
        session: &mut session,
        org: &mut org,
        reference: &reference,
        catalog: &catalog,
        figures,
        rng: choices(args.spec.seed),
        concurrency: args.concurrency,
        ready_at: None,
    };
    // The edge's rules name groups outside the view: changes and reloads are measured on the
    // whole snapshot only.
    let outcome = if args.snapshot == "default" {
        phases.run(args.changes, args.reloads)
    } else {
        phases.run(0, 0)
    };
    // The peak is read last, whatever stopped the run (a stopped process has none).
    if let Some(peak) = session.cp_mib("VmHWM") {
        figures.cp_peak_rss_mib = Some(peak);
    }
    if outcome.as_ref().is_err_and(|stop| !stop.is_limit()) {
        let log = work_dir.join("meshgate-serve.log");
        eprintln!("control-plane log: {}", log.display());
    }
    session.stop_control_plane();
    outcome
}

/// Total size of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}
