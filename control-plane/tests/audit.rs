//! The audit log's hash chain: `audit::verify` and `meshgate audit verify FILE` on a good
//! chain and on each kind of damage, which is reported with its line number.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::path::PathBuf;

use meshgate_control_plane::audit::{
    render, sha256_hex, verify, AuditDraft, AuditLine, Broken, EventKind, Problem, GENESIS,
};
use meshgate_control_plane::cli::{run, CliEnv};

fn draft(event: EventKind, at_ms: i64) -> AuditDraft {
    AuditDraft {
        event,
        at_ms,
        actor: "user:default/alice".into(),
        request_id: Some("01HZX3".into()),
        grant_id: None,
        target: Some(serde_json::json!({"kind": "group", "group": "group:default/data-eng"})),
        detail: serde_json::json!({"reason": "on call"}),
    }
}

/// `count` chained lines starting at `first_seq`.
fn chain(first_seq: i64, count: usize) -> Vec<String> {
    let mut prev = GENESIS.to_owned();
    let kinds = [
        EventKind::Requested,
        EventKind::Reviewed,
        EventKind::Approved,
        EventKind::Granted,
        EventKind::Expired,
    ];
    (0..count)
        .map(|index| {
            let seq = first_seq + i64::try_from(index).unwrap();
            let kind = kinds[index % kinds.len()];
            let AuditLine {
                line, line_sha256, ..
            } = render(seq, &prev, &draft(kind, 1_700_000_000_000 + seq)).unwrap();
            prev = line_sha256;
            line
        })
        .collect()
}

fn file(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

fn broken(line: usize, problem: Problem) -> Result<(), Broken> {
    Err(Broken { line, problem })
}

#[test]
fn each_kind_of_damage_is_found_at_its_line() {
    let good = chain(1, 5);
    let edited = {
        let mut lines = good.clone();
        lines[2] = lines[2].replace("on call", "on cal1");
        file(&lines)
    };
    // A line rewritten with a fresh, valid hash: found by the next line's `prev`.
    let rehashed = {
        let mut lines = good.clone();
        let value: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        let mut forged = draft(EventKind::Approved, 1_700_000_000_001);
        forged.actor = "user:default/mallory".into();
        lines[1] = render(2, &sha256_hex(lines[0].as_bytes()), &forged)
            .unwrap()
            .line;
        assert_eq!(value["seq"], 1);
        file(&lines)
    };
    let cases: Vec<(&str, String, Result<(), Broken>)> = vec![
        ("intact", file(&good), Ok(())),
        ("empty", String::new(), Ok(())),
        ("starts mid-chain", file(&chain(41, 3)[1..]), Ok(())),
        ("edited field", edited, broken(3, Problem::Edited)),
        (
            "hash removed",
            file(&[good[0].clone(), good[1].replace(",\"hash\":", ",\"hsah\":")]),
            broken(2, Problem::Field { field: "hash" }),
        ),
        ("rewritten and rehashed", rehashed, broken(3, Problem::Prev)),
        (
            "line removed (gap)",
            file(&[good[0].clone(), good[1].clone(), good[3].clone()]),
            broken(
                3,
                Problem::Gap {
                    expected: 3,
                    found: 4,
                },
            ),
        ),
        (
            "lines swapped",
            file(&[good[0].clone(), good[2].clone(), good[1].clone()]),
            broken(
                2,
                Problem::Gap {
                    expected: 2,
                    found: 3,
                },
            ),
        ),
        (
            "line repeated",
            file(&[good[0].clone(), good[1].clone(), good[1].clone()]),
            broken(
                3,
                Problem::Reordered {
                    expected: 3,
                    found: 2,
                },
            ),
        ),
        (
            "last line cut",
            format!("{}{}", file(&good[..3]), &good[3][..40]),
            broken(4, Problem::Truncated),
        ),
        (
            "not JSON",
            format!("{}garbage\n{}", file(&good[..2]), file(&good[2..])),
            broken(3, Problem::NotJson),
        ),
        (
            "cut line in the middle",
            format!(
                "{}{}\n{}",
                file(&good[..1]),
                &good[1][..30],
                file(&good[2..])
            ),
            broken(2, Problem::NotJson),
        ),
        (
            "other schema",
            file(&[good[0].replace("meshgate.audit/1", "meshgate.audit/2")]),
            broken(1, Problem::Schema),
        ),
        (
            "first event with a prev",
            file(&good[1..2])
                .replace("\"seq\":2", "\"seq\":1")
                .replace(",\"hash\":", ",\"x\":0,\"hash\":"),
            // The edit is found first: the hash covers seq.
            broken(1, Problem::Edited),
        ),
    ];
    for (name, text, want) in cases {
        let got = verify(text.as_bytes()).map(drop);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_first_event_must_start_from_the_genesis_prev() {
    let line = render(1, &"1".repeat(64), &draft(EventKind::Requested, 0))
        .unwrap()
        .line;
    assert_eq!(
        verify(format!("{line}\n").as_bytes()).map(drop),
        broken(1, Problem::Genesis)
    );
}

#[test]
fn the_hash_rule_is_the_documented_one() {
    // docs/access.md: strip `,"hash":"<hex>"}` for `}` and hash; `prev` hashes the whole
    // previous line. Checked here without the library's verifier.
    let lines = chain(1, 2);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let hash = value["hash"].as_str().unwrap();
        let stripped = line.replace(&format!(",\"hash\":\"{hash}\"}}"), "}");
        assert_eq!(sha256_hex(stripped.as_bytes()), hash);
    }
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["prev"], sha256_hex(lines[0].as_bytes()));
    // The fields in their documented order, `hash` last.
    let at: Vec<usize> = [
        "schema",
        "seq",
        "at",
        "event",
        "actor",
        "request_id",
        "grant_id",
        "target",
        "detail",
        "prev",
        "hash",
    ]
    .iter()
    .map(|key| lines[0].find(&format!("\"{key}\":")).unwrap())
    .collect();
    assert!(at.windows(2).all(|pair| pair[0] < pair[1]), "{}", lines[0]);
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("meshgate-audit-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meshgate(args: &[&str]) -> (u8, String, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let env = CliEnv {
        now: 1_700_000_000,
        demo_dir: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&args, &env, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn the_cli_exits_0_intact_1_broken_2_unreadable() {
    let scratch = Scratch::new("cli");
    let good = chain(1, 4);
    let intact = scratch.0.join("intact.jsonl");
    std::fs::write(&intact, file(&good)).unwrap();
    let gap = scratch.0.join("gap.jsonl");
    std::fs::write(&gap, file(&[good[0].clone(), good[2].clone()])).unwrap();
    let cut = scratch.0.join("cut.jsonl");
    std::fs::write(&cut, format!("{}{}", file(&good[..2]), &good[2][..20])).unwrap();
    let missing = scratch.0.join("missing.jsonl");
    let cases = [
        (&intact, 0, "4 events, seq 1 to 4, chain intact"),
        (&gap, 1, "line 2: gap: expected seq 2, found 3"),
        (&cut, 1, "line 3: the last line is cut short"),
        (&missing, 2, ""),
    ];
    for (path, code, says) in cases {
        let path = path.to_str().unwrap();
        let (got, out, err) = meshgate(&["audit", "verify", path]);
        assert_eq!(got, code, "{path}: {out}{err}");
        assert!(out.contains(says), "{path}: {out}");
        if code == 2 {
            assert!(
                err.starts_with("meshgate: error: cannot read the audit log"),
                "{err}"
            );
            assert!(!err.contains("usage:"), "{err}");
        }
    }
    // No file named: a usage error.
    let (code, _, err) = meshgate(&["audit", "verify"]);
    assert_eq!(code, 2);
    assert!(err.contains("`FILE` is required"), "{err}");
}

/// Lines committed by the store, appended by the file sink across two openings (a restart),
/// make a file that `meshgate audit verify` accepts; cutting one line out of it is caught.
#[test]
fn the_file_sink_writes_a_chain_the_cli_accepts() {
    use meshgate_control_plane::access_store::{
        AccessRequest, AccessStore, RequestState, SqliteStore, Target,
    };
    use meshgate_control_plane::audit::{AuditConfig, AuditSink};

    let scratch = Scratch::new("sink");
    let log = scratch.0.join("audit.jsonl");
    let config = AuditConfig {
        stdout: false,
        file: Some(log.clone()),
    };
    for round in 0..2 {
        let store = SqliteStore::open(&scratch.0.join("access.db")).unwrap();
        let mut sink = AuditSink::open(&config).unwrap();
        for index in 0..3 {
            let id = format!("r{round}-{index}");
            let request = AccessRequest {
                id: id.clone(),
                requester: "user:default/carol".into(),
                target: Target::Group {
                    group: "group:default/data-eng".into(),
                },
                entry: "data_eng".into(),
                duration_s: 900,
                reason: "on call".into(),
                state: RequestState::Pending,
                created_at: 0,
                decided_at: None,
                version: 0,
            };
            let mut requested = draft(EventKind::Requested, 1_700_000_000_000);
            requested.request_id = Some(id.clone());
            sink.write(&store.create_request(&request, &[requested]).unwrap())
                .unwrap();
            let mut cancelled = draft(EventKind::Cancelled, 1_700_000_000_500);
            cancelled.request_id = Some(id.clone());
            sink.write(&store.cancel(&id, 1, &[cancelled]).unwrap())
                .unwrap();
        }
    }
    let path = log.to_str().unwrap();
    let (code, out, _) = meshgate(&["audit", "verify", path]);
    assert_eq!(
        (code, out.contains("12 events, seq 1 to 12")),
        (0, true),
        "{out}"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    let without_fifth: String = text
        .lines()
        .enumerate()
        .filter(|(index, _)| *index != 4)
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    std::fs::write(&log, without_fifth).unwrap();
    let (code, out, _) = meshgate(&["audit", "verify", path]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 5: gap: expected seq 5, found 6"),
        "{out}"
    );
}
