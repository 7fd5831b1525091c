//! `meshgate snapshot show FILE|URL`: what a signed snapshot holds, so that an operator can
//! answer "why is dave denied" without writing a decoder. The signature is verified when a
//! key is given (`--key`, or `--config` for the filter's own keys and limits); otherwise the
//! output says plainly that it is not.
//!
//! Whatever the input (empty, truncated, not a snapshot, too large, tampered), the answer is one
//! line on stderr and exit status 2, never a panic.

use std::io::{Read as _, Write};
use std::path::PathBuf;
use std::time::Duration;

use meshgate_core::snapshot::{
    DecodeLimits, GroupSet, PublicKeySpec, Snapshot, SnapshotHeader, TrustedKey,
    UnverifiedSnapshot, UserView,
};
use serde::Serialize;
use serde_json::Value;

use super::args::{Arg, Args};
use super::check::load_policy;
use super::err::CliError;
use super::{write_out, CliEnv, Command};
use crate::snapshot::load_signing_key;

/// Where the control plane serves the whole snapshot, for a URL that names only the server.
const DEFAULT_SNAPSHOT_PATH: &str = "/v1/snapshots/default";
const SNAPSHOTS_PREFIX: &str = "/v1/snapshots/";
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed `snapshot show` command line.
pub(super) struct ShowCommand {
    source: String,
    user: Option<String>,
    key: Option<PathBuf>,
    config: Option<String>,
    json: bool,
}

pub(super) fn parse(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut source = None;
    let (mut user, mut key, mut config, mut json) = (None, None, None, false);
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Operand(operand) => source = Some(operand.to_owned()),
            Arg::Flag(flag) => match flag.name {
                "--user" => user = Some(flag.value()?.to_owned()),
                "--key" => key = Some(PathBuf::from(flag.value()?)),
                "--config" => config = Some(flag.value()?.to_owned()),
                "--json" => json = true,
                _ => return Err(flag.unhandled()),
            },
        }
    }
    let source = source.ok_or(CliError::MissingFlag { flag: "FILE|URL" })?;
    if key.is_some() && config.is_some() {
        return Err(CliError::Invalid {
            what: String::from("--key and --config"),
            detail: String::from("give one: both name the keys to verify with"),
        });
    }
    Ok(Command::SnapshotShow(ShowCommand {
        source,
        user,
        key,
        config,
        json,
    }))
}

/// Prints the snapshot; 0, or 1 when `--user` names nobody in it.
pub(super) fn run(command: &ShowCommand, out: &mut dyn Write) -> Result<u8, CliError> {
    let trust = match (&command.key, &command.config) {
        (Some(path), _) => Some((key_file(path)?, DecodeLimits::default())),
        (None, Some(config)) => {
            let policy = load_policy(config)?;
            let source = policy.snapshot.ok_or_else(|| CliError::Invalid {
                what: String::from("--config"),
                detail: format!("`{config}` has no `snapshot` section, so no key to verify with"),
            })?;
            Some((source.trusted_keys, source.limits))
        }
        (None, None) => None,
    };
    let limits = trust
        .as_ref()
        .map_or_else(DecodeLimits::default, |(_, limits)| limits.clone());
    let (bytes, view) = read_source(&command.source, limits.max_bytes)?;
    let bad = |error| CliError::BadSnapshot {
        from: command.source.clone(),
        error,
    };
    let (checked, unverified);
    let (snapshot, verified): (&Snapshot, bool) = match &trust {
        Some((keys, limits)) => {
            checked = Snapshot::decode(&bytes, keys, limits).map_err(bad)?;
            (&checked, true)
        }
        None => {
            unverified = UnverifiedSnapshot::decode(&bytes, &limits).map_err(bad)?;
            (unverified.contents(), false)
        }
    };
    let format = SnapshotHeader::peek_format(&bytes).map_err(bad)?;
    let shown = Shown::new(&command.source, snapshot, format, view, verified);
    let (body, found) = match &command.user {
        Some(wanted) => {
            let found = find_user(snapshot, wanted);
            let ok = matches!(found, Found::User(_));
            (Body::User(UserDetail::new(snapshot, wanted, found)), ok)
        }
        None => (Body::All(Listing::new(snapshot)), true),
    };
    let text = if command.json {
        let mut value = serde_json::json!({"source": shown.source, "header": shown.header, "counts": shown.counts});
        let body = serde_json::to_value(&body).unwrap_or(Value::Null);
        if let (Value::Object(all), Value::Object(more)) = (&mut value, body) {
            all.extend(more);
        }
        format!("{value:#}\n")
    } else {
        let mut text = shown.to_text();
        body.write_text(&mut text);
        if !verified {
            // Again at the end, where a long listing leaves the reader.
            text.push_str(
                "\nsignature NOT verified: no --key or --config given; anyone could have written this snapshot\n",
            );
        }
        text
    };
    write_out(out, &text)?;
    Ok(if found { 0 } else { 1 })
}

/// The trusted keys in `path`: one public key line from `meshgate keygen`
/// (`{"kid", "public_key"}`), a JSON list of them, or the signing key file itself.
fn key_file(path: &PathBuf) -> Result<Vec<TrustedKey>, CliError> {
    let invalid = |detail: String| CliError::Invalid {
        what: String::from("--key"),
        detail,
    };
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read `{shown}`: {e}")))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("`{shown}` is not JSON: {e}")))?;
    if value.get("private_key").is_some() {
        let key = load_signing_key(path).map_err(|e| invalid(e.to_string()))?;
        return Ok(vec![key.trusted_key()]);
    }
    let specs: Vec<PublicKeySpec> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|spec| vec![spec]),
    }
    .map_err(|e| {
        invalid(format!(
            "`{shown}` is not a public key line {{\"kid\", \"public_key\"}}, a list of them or a signing key file: {e}"
        ))
    })?;
    if specs.is_empty() {
        return Err(invalid(format!("`{shown}` lists no key")));
    }
    specs
        .iter()
        .map(|spec| TrustedKey::from_spec(spec).map_err(|e| invalid(format!("`{shown}`: {e}"))))
        .collect()
}

/// The bytes of a file or of a URL's answer, at most `max` of them, and the view the URL names.
fn read_source(source: &str, max: usize) -> Result<(Vec<u8>, Option<String>), CliError> {
    let too_large = || CliError::SnapshotTooLarge {
        from: source.to_owned(),
        max,
    };
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let (bytes, view) = if is_url(source) {
        let (url, view) = snapshot_url(source);
        let response = match ureq::AgentBuilder::new()
            .timeout(FETCH_TIMEOUT)
            .build()
            .get(&url)
            .call()
        {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                let shown: String = body.trim().chars().take(200).collect();
                return Err(CliError::Fetch {
                    url,
                    detail: format!("HTTP {status} {shown}").trim_end().to_owned(),
                });
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(CliError::Fetch {
                    url,
                    detail: transport.to_string(),
                })
            }
        };
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::Fetch {
                url: url.clone(),
                detail: format!("reading the answer: {e}"),
            })?;
        (bytes, view)
    } else {
        let read_error = |e| CliError::Read {
            path: source.to_owned(),
            source: e,
        };
        let file = std::fs::File::open(source).map_err(read_error)?;
        if file
            .metadata()
            .is_ok_and(|meta| meta.is_file() && meta.len() >= limit)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        (bytes, None)
    };
    if bytes.is_empty() {
        return Err(CliError::EmptySnapshot {
            from: source.to_owned(),
        });
    }
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok((bytes, view))
}

fn is_url(source: &str) -> bool {
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The URL to fetch (a bare server URL gets the whole snapshot's path) and the view its path
/// names.
fn snapshot_url(source: &str) -> (String, Option<String>) {
    let after_scheme = source.find("://").map_or(0, |at| at + 3);
    let rest = source.get(after_scheme..).unwrap_or_default();
    let path = rest.find('/').and_then(|at| rest.get(at..)).unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() || path == "/" {
        let url = format!("{}{DEFAULT_SNAPSHOT_PATH}", source.trim_end_matches('/'));
        return (url, Some(String::from("default")));
    }
    let view = path
        .strip_prefix(SNAPSHOTS_PREFIX)
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .map(str::to_owned);
    (source.to_owned(), view)
}

/// The header and counts, shown in either mode.
struct Shown<'a> {
    source: &'a str,
    header: HeaderView<'a>,
    counts: Counts,
}

#[derive(Serialize)]
struct HeaderView<'a> {
    format: u16,
    version: u64,
    /// The name it was served under, when fetched from `/v1/snapshots/<name>`; a file does
    /// not record it.
    view: Option<String>,
    created: String,
    generated_at: i64,
    content_hash: String,
    key_id: &'a str,
    size: usize,
    signature: &'static str,
}

#[derive(Serialize)]
struct Counts {
    users: usize,
    groups: usize,
    owned: usize,
    /// Rules carried, `None` when the snapshot carries none.
    rules: Option<usize>,
}

impl<'a> Shown<'a> {
    fn new(
        source: &'a str,
        snapshot: &'a Snapshot,
        format: u16,
        view: Option<String>,
        verified: bool,
    ) -> Shown<'a> {
        Shown {
            source,
            header: HeaderView {
                format,
                version: snapshot.version(),
                view,
                created: utc(snapshot.generated_at()),
                generated_at: snapshot.generated_at(),
                content_hash: snapshot.content_hash_hex(),
                key_id: snapshot.key_id(),
                size: snapshot.encoded_len(),
                signature: if verified { "verified" } else { "not_verified" },
            },
            counts: Counts {
                users: snapshot.user_count(),
                groups: snapshot.group_count(),
                owned: snapshot.owned_count(),
                rules: snapshot.rules_json().map(|text| rules(text).len()),
            },
        }
    }

    fn to_text(&self) -> String {
        let header = &self.header;
        let signature = if header.signature == "verified" {
            format!("verified with trusted key `{}`", header.key_id)
        } else {
            String::from("NOT verified (no --key or --config given)")
        };
        let view = header.view.as_deref().map_or_else(
            || String::from("not recorded in a file (the control plane serves it by name)"),
            str::to_owned,
        );
        let counts = &self.counts;
        let rules = counts
            .rules
            .map_or_else(|| String::from("no rules"), |n| format!("{n} rules"));
        format!(
            "snapshot `{}`\n  format        {}\n  version       {}\n  view          {view}\n  created       {} ({})\n  content hash  {}\n  signer kid    {}\n  size          {} bytes\n  signature     {signature}\ncounts: {} users, {} groups, {} owned resources, {rules}\n",
            self.source,
            header.format,
            header.version,
            header.created,
            header.generated_at,
            header.content_hash,
            header.key_id,
            header.size,
            counts.users,
            counts.groups,
            counts.owned,
        )
    }
}

/// What follows the header: everything, or one user.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    All(Listing<'a>),
    User(UserDetail<'a>),
}

#[derive(Serialize)]
struct Listing<'a> {
    users: Vec<UserRow<'a>>,
    groups: Vec<GroupRow<'a>>,
    owned: Vec<OwnedRow<'a>>,
    /// The rules as published (JSON), `None` when the snapshot carries none.
    rules: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct UserRow<'a> {
    #[serde(rename = "ref")]
    entity_ref: &'a str,
    email: Option<&'a str>,
    direct_groups: Vec<&'a str>,
    /// Direct groups and every group above them.
    closed_groups: Vec<&'a str>,
}

#[derive(Serialize)]
struct GroupRow<'a> {
    #[serde(rename = "ref")]
    entity_ref: &'a str,
    ancestors: Vec<&'a str>,
}

#[derive(Serialize)]
struct OwnedRow<'a> {
    kind: &'a str,
    id: &'a str,
    owners: Vec<&'a str>,
}

impl<'a> UserRow<'a> {
    fn new(snapshot: &'a Snapshot, user: UserView<'a>) -> UserRow<'a> {
        UserRow {
            entity_ref: user.entity_ref,
            email: snapshot.user_email(user.entity_ref),
            direct_groups: refs(user.groups.direct()),
            closed_groups: refs(user.groups),
        }
    }
}

impl<'a> Listing<'a> {
    fn new(snapshot: &'a Snapshot) -> Listing<'a> {
        let groups = (0..snapshot.group_count())
            .filter_map(|index| u32::try_from(index).ok())
            .filter_map(|index| {
                Some(GroupRow {
                    entity_ref: snapshot.group_ref(index)?,
                    ancestors: refs(snapshot.ancestors_of(index)),
                })
            })
            .collect();
        Listing {
            users: snapshot
                .users()
                .map(|user| UserRow::new(snapshot, user))
                .collect(),
            groups,
            owned: snapshot
                .owned()
                .map(|entry| OwnedRow {
                    kind: entry.kind,
                    id: entry.id,
                    owners: refs(entry.owners),
                })
                .collect(),
            rules: snapshot.rules_json().map(rules),
        }
    }
}

/// `--user`: who was asked for, who that is in the snapshot, their groups and what they own.
#[derive(Serialize)]
struct UserDetail<'a> {
    /// As given on the command line.
    asked: &'a str,
    /// The user, or `None` with `reason`.
    user: Option<UserRow<'a>>,
    /// Why no user is shown.
    reason: Option<String>,
    /// Resources the user owns, themselves or through one of their closed groups.
    owns: Vec<Owns<'a>>,
}

#[derive(Serialize)]
struct Owns<'a> {
    kind: &'a str,
    id: &'a str,
    /// The owners that make it theirs: their own ref, or their groups.
    via: Vec<&'a str>,
}

enum Found<'a> {
    User(UserView<'a>),
    Missing(String),
}

/// The user `wanted` names: an entity ref, a bare name (namespace `default`), or an email.
fn find_user<'a>(snapshot: &'a Snapshot, wanted: &str) -> Found<'a> {
    if wanted.contains('@') && !wanted.contains(':') {
        if let Some(user) = snapshot.user_by_email(wanted) {
            return Found::User(user);
        }
        let email = wanted.to_ascii_lowercase();
        let holders: Vec<&str> = snapshot
            .users()
            .map(|user| user.entity_ref)
            .filter(|user| snapshot.user_email(user) == Some(email.as_str()))
            .collect();
        return Found::Missing(if holders.is_empty() {
            format!("no user has the email `{email}` in this snapshot")
        } else {
            format!(
                "the email `{email}` belongs to {}, so the filter maps it to none of them",
                holders.join(", ")
            )
        });
    }
    let Some(entity_ref) = meshgate_core::groupref::user_ref(wanted, "default") else {
        return Found::Missing(format!(
            "`{wanted}` is not a user entity ref, user name or email"
        ));
    };
    match snapshot.user(&entity_ref) {
        Some(user) => Found::User(user),
        None => Found::Missing(format!(
            "`{entity_ref}` is not in this snapshot: the filter knows only the groups its token carries"
        )),
    }
}

impl<'a> UserDetail<'a> {
    fn new(snapshot: &'a Snapshot, asked: &'a str, found: Found<'a>) -> UserDetail<'a> {
        let user = match found {
            Found::User(user) => user,
            Found::Missing(reason) => {
                return UserDetail {
                    asked,
                    user: None,
                    reason: Some(reason),
                    owns: Vec::new(),
                }
            }
        };
        let owns = snapshot
            .owned()
            .filter_map(|entry| {
                let via: Vec<&str> = entry
                    .owners
                    .iter()
                    .filter(|owner| *owner == user.entity_ref || user.groups.contains(owner))
                    .collect();
                (!via.is_empty()).then_some(Owns {
                    kind: entry.kind,
                    id: entry.id,
                    via,
                })
            })
            .collect();
        UserDetail {
            asked,
            user: Some(UserRow::new(snapshot, user)),
            reason: None,
            owns,
        }
    }
}

impl Body<'_> {
    fn write_text(&self, text: &mut String) {
        match self {
            Body::All(listing) => listing.write_text(text),
            Body::User(detail) => detail.write_text(text),
        }
    }
}

impl Listing<'_> {
    fn write_text(&self, text: &mut String) {
        text.push_str(&format!("\nusers ({}):\n", self.users.len()));
        for user in &self.users {
            user.write_text(text, "  ");
        }
        text.push_str(&format!("\ngroups ({}):\n", self.groups.len()));
        for group in &self.groups {
            text.push_str(&format!("  {}", group.entity_ref));
            if !group.ancestors.is_empty() {
                text.push_str(&format!("  ancestors: {}", group.ancestors.join(", ")));
            }
            text.push('\n');
        }
        text.push_str(&format!("\nowned resources ({}):\n", self.owned.len()));
        for owned in &self.owned {
            let owners = if owned.owners.is_empty() {
                String::from("(no owner)")
            } else {
                owned.owners.join(", ")
            };
            text.push_str(&format!(
                "  {} {}  owners: {owners}\n",
                owned.kind, owned.id
            ));
        }
        if let Some(rules) = &self.rules {
            text.push_str(&format!("\nrules ({}):\n", rules.len()));
            for rule in rules {
                text.push_str(&format!("  {rule}\n"));
            }
        }
    }
}

impl UserRow<'_> {
    fn write_text(&self, text: &mut String, indent: &str) {
        text.push_str(&format!("{indent}{}", self.entity_ref));
        if let Some(email) = self.email {
            text.push_str(&format!("  email {email}"));
        }
        text.push('\n');
        let list = |groups: &[&str]| {
            if groups.is_empty() {
                String::from("(none)")
            } else {
                groups.join(", ")
            }
        };
        text.push_str(&format!(
            "{indent}  direct groups: {}\n{indent}  closed groups: {}\n",
            list(&self.direct_groups),
            list(&self.closed_groups)
        ));
    }
}

impl UserDetail<'_> {
    fn write_text(&self, text: &mut String) {
        let Some(user) = &self.user else {
            let reason = self.reason.as_deref().unwrap_or_default();
            text.push_str(&format!("\nuser `{}`: {reason}\n", self.asked));
            return;
        };
        text.push_str("\nuser:\n");
        user.write_text(text, "  ");
        if self.owns.is_empty() {
            text.push_str(
                "  owns nothing: no resource lists the user or one of their closed groups as an owner\n",
            );
            return;
        }
        text.push_str(&format!("  owns ({}):\n", self.owns.len()));
        for owns in &self.owns {
            text.push_str(&format!(
                "    {} {}  via {}\n",
                owns.kind,
                owns.id,
                owns.via.join(", ")
            ));
        }
    }
}

fn refs(set: GroupSet<'_>) -> Vec<&str> {
    set.iter().collect()
}

/// The rules as a list: the published JSON array, or the text as one string when it is not
/// one (the filter would refuse such a snapshot; showing it helps to see why).
fn rules(text: &str) -> Vec<Value> {
    match serde_json::from_str(text) {
        Ok(Value::Array(rules)) => rules,
        _ => vec![Value::String(text.to_owned())],
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date: eras of 400 years, 146097 days each.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use meshgate_core::snapshot::{GroupInput, OwnedInput, SnapshotInput, UserInput};

    use super::super::tests::{env, run_args};
    use super::*;
    use crate::serve::fixture::Fixture;
    use crate::serve::{no_log, Server};
    use crate::snapshot::public_key_line;

    /// data-eng ⊃ analytics; dave in analytics and owner of his own DAG; alice and bob share an
    /// email; rules published.
    fn input() -> SnapshotInput {
        let user = |name: &str, email: Option<&str>, groups: &[&str]| UserInput {
            entity_ref: format!("user:default/{name}"),
            email: email.map(str::to_owned),
            groups: groups
                .iter()
                .map(|g| format!("group:default/{g}"))
                .collect(),
        };
        let owned = |kind: &str, id: &str, owners: &[&str]| OwnedInput {
            kind: kind.into(),
            id: id.into(),
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
        };
        SnapshotInput {
            users: vec![
                user("dave", Some("Dave@Example.com"), &["analytics"]),
                user("alice", Some("ops@example.com"), &["data-eng"]),
                user("bob", Some("ops@example.com"), &[]),
            ],
            owned: vec![
                owned("airflow.dag", "etl_daily", &["group:default/data-eng"]),
                owned("airflow.dag", "personal", &["user:default/dave"]),
                owned("buildkite.pipeline", "acme/deploy", &["group:default/ci"]),
            ],
            groups: vec![
                GroupInput {
                    entity_ref: "group:default/analytics".into(),
                    ancestors: vec!["group:default/data-eng".into()],
                },
                GroupInput {
                    entity_ref: "group:default/data-eng".into(),
                    ancestors: Vec::new(),
                },
            ],
            rules: Some(r#"[{"id":"dag-owners","action":"allow"}]"#.into()),
        }
    }

    struct Files {
        fixture: Fixture,
        snapshot: String,
        public: String,
        bytes: Vec<u8>,
    }

    fn files(label: &str) -> Files {
        let fixture = Fixture::new(label);
        let bytes =
            crate::snapshot::build(&input().interned(), 42, 1_700_000_000, &fixture.key).unwrap();
        let snapshot = fixture.dir.join("s.snap");
        std::fs::write(&snapshot, &bytes).unwrap();
        let public = fixture.dir.join("public.json");
        std::fs::write(&public, public_key_line(&fixture.key)).unwrap();
        Files {
            snapshot: snapshot.display().to_string(),
            public: public.display().to_string(),
            bytes,
            fixture,
        }
    }

    #[test]
    fn shows_header_counts_users_groups_owned_and_rules() {
        let files = files("show-all");
        let (code, out, err) = run_args(&["snapshot", "show", &files.snapshot], &env());
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        for expected in [
            "  format        2\n",
            "  version       42\n",
            "  view          not recorded in a file",
            "  created       2023-11-14T22:13:20Z (1700000000)\n",
            "  signer kid    cp-test\n",
            "  signature     NOT verified (no --key or --config given)",
            "counts: 3 users, 4 groups, 3 owned resources, 1 rules\n",
            "\nusers (3):\n  user:default/alice  email ops@example.com\n    direct groups: group:default/data-eng\n    closed groups: group:default/data-eng\n",
            "  user:default/dave  email dave@example.com\n    direct groups: group:default/analytics\n    closed groups: group:default/analytics, group:default/data-eng\n",
            "  user:default/bob  email ops@example.com\n    direct groups: (none)\n",
            "  group:default/analytics  ancestors: group:default/data-eng\n",
            "  airflow.dag personal  owners: user:default/dave\n",
            "\nrules (1):\n  {\"action\":\"allow\",\"id\":\"dag-owners\"}\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
        let hash = SnapshotHeader::peek(&files.bytes)
            .unwrap()
            .content_hash_hex();
        assert!(out.contains(&format!("  content hash  {hash}\n")), "{out}");
        assert!(out.contains(&format!("  size          {} bytes\n", files.bytes.len())));

        // Verified with the public key line, a list of keys, the signing key file, the config.
        let list = files.fixture.dir.join("list.json");
        let line = public_key_line(&files.fixture.key);
        std::fs::write(&list, format!("[{line}]")).unwrap();
        let config = files.fixture.dir.join("plugin.json");
        std::fs::write(
            &config,
            serde_json::json!({"snapshot": {"cluster": "cp", "uri": "http://cp/v1/snapshots/default",
                "public_keys": [serde_json::from_str::<Value>(&line).unwrap()]}})
            .to_string(),
        )
        .unwrap();
        let key_file = files.fixture.key_file.display().to_string();
        let list = list.display().to_string();
        let config = config.display().to_string();
        for extra in [
            ["--key", files.public.as_str()],
            ["--key", list.as_str()],
            ["--key", key_file.as_str()],
            ["--config", config.as_str()],
        ] {
            let mut args = vec!["snapshot", "show", files.snapshot.as_str()];
            args.extend(extra);
            let (code, out, err) = run_args(&args, &env());
            assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
            assert!(
                out.contains("  signature     verified with trusted key `cp-test`\n")
                    && !out.contains("NOT verified"),
                "{args:?}: {out}"
            );
        }
    }

    #[test]
    fn json_holds_the_same() {
        let files = files("show-json");
        let (code, out, _) = run_args(
            &[
                "snapshot",
                "show",
                &files.snapshot,
                "--json",
                "--key",
                &files.public,
            ],
            &env(),
        );
        assert_eq!(code, 0);
        let json: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["header"]["signature"], "verified");
        assert_eq!(json["header"]["format"], 2);
        assert_eq!(json["header"]["key_id"], "cp-test");
        assert_eq!(json["counts"]["rules"], 1);
        assert_eq!(json["users"][1]["ref"], "user:default/bob");
        assert_eq!(
            json["users"][2]["closed_groups"],
            serde_json::json!(["group:default/analytics", "group:default/data-eng"])
        );
        assert_eq!(json["groups"].as_array().unwrap().len(), 4);
        assert_eq!(json["owned"][0]["owners"][0], "group:default/data-eng");
        assert_eq!(json["rules"][0]["id"], "dag-owners");
        let (_, out, _) = run_args(&["snapshot", "show", &files.snapshot, "--json"], &env());
        let json: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["header"]["signature"], "not_verified");
    }

    #[test]
    fn one_user_with_groups_and_what_they_own() {
        let files = files("show-user");
        let show = |user: &str, json: bool| {
            let mut args = vec!["snapshot", "show", files.snapshot.as_str(), "--user", user];
            if json {
                args.push("--json");
            }
            run_args(&args, &env())
        };
        for asked in [
            "user:default/dave",
            "dave",
            "User:Default/Dave",
            "DAVE@example.com",
        ] {
            let (code, out, err) = show(asked, false);
            assert_eq!((code, err.as_str()), (0, ""), "{asked}");
            assert!(
                out.contains("\nuser:\n  user:default/dave  email dave@example.com\n    direct groups: group:default/analytics\n    closed groups: group:default/analytics, group:default/data-eng\n  owns (2):\n    airflow.dag etl_daily  via group:default/data-eng\n    airflow.dag personal  via user:default/dave\n"),
                "{asked}: {out}"
            );
            assert!(!out.contains("users ("), "{out}");
        }
        let (code, out, _) = show("bob", false);
        assert_eq!(code, 0);
        assert!(out.contains("  owns nothing: "), "{out}");
        let (code, out, _) = show("dave", true);
        assert_eq!(code, 0);
        let json: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["user"]["ref"], "user:default/dave");
        assert_eq!(json["owns"][1]["via"][0], "user:default/dave");
        for (asked, reason) in [
            ("zed", "`user:default/zed` is not in this snapshot"),
            (
                "ops@example.com",
                "belongs to user:default/alice, user:default/bob, so the filter maps it to none",
            ),
            ("nobody@example.com", "no user has the email"),
            ("group:default/data-eng", "is not a user entity ref"),
        ] {
            let (code, out, err) = show(asked, false);
            assert_eq!((code, err.as_str()), (1, ""), "{asked}");
            assert!(out.contains(reason), "{asked}: {out}");
        }
    }

    #[test]
    fn unreadable_snapshots_are_one_line_and_exit_2() {
        let files = files("show-hostile");
        let dir = &files.fixture.dir;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        };
        let empty = write("empty.snap", b"");
        let truncated = write("truncated.snap", &files.bytes[..files.bytes.len() - 10]);
        let header_only = write("header.snap", &files.bytes[..30]);
        let magic = write(
            "magic.snap",
            b"GIF89a this is no snapshot at all, but long enough to hold a header",
        );
        let mut flipped = files.bytes.clone();
        flipped[70] ^= 1;
        let tampered = write("tampered.snap", &flipped);
        let huge = dir.join("huge.snap");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(64 * 1024 * 1024 + 1)
            .unwrap();
        let huge = huge.display().to_string();
        let other = Fixture::new("show-hostile-other-key");
        let other_key = other.dir.join("public.json");
        std::fs::write(
            &other_key,
            public_key_line(&other.key).replace("cp-test", "other"),
        )
        .unwrap();
        let other_key = other_key.display().to_string();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec![&empty], "is empty, not a snapshot"),
            (
                vec![&truncated],
                "snapshot is truncated: signature needs 10 more bytes",
            ),
            (vec![&header_only], "snapshot is truncated: header needs"),
            (vec![&magic], "not a meshgate snapshot (bad magic)"),
            (
                vec![&tampered],
                "snapshot content does not match its content hash",
            ),
            (vec![&huge], "is more than 67108864 bytes"),
            (
                vec![&files.snapshot, "--key", &other_key],
                "signed with key `cp-test`, which is not trusted",
            ),
        ];
        for (extra, expected) in cases {
            let mut args = vec!["snapshot", "show"];
            args.extend(extra);
            let (code, out, err) = run_args(&args, &env());
            assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(expected), "{args:?}: {err}");
        }
        // Command-line mistakes are usage errors (with the help), a missing file is a failure.
        for (args, code, expected) in [
            (vec!["snapshot", "show"], 2, "option `FILE|URL` is required"),
            (
                vec!["snapshot", "show", "a", "b"],
                2,
                "unexpected argument `b`",
            ),
            (
                vec!["snapshot", "show", "a", "--key", "k", "--config", "c"],
                2,
                "give one",
            ),
            (
                vec!["snapshot", "show", "/nonexistent/x.snap"],
                1,
                "cannot read `/nonexistent/x.snap`",
            ),
            (
                vec![
                    "snapshot",
                    "show",
                    &files.snapshot,
                    "--key",
                    &files.snapshot,
                ],
                2,
                "--key: cannot read",
            ),
        ] {
            let (got, _, err) = run_args(&args, &env());
            assert_eq!(got, code, "{args:?}: {err}");
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn fetches_from_a_control_plane() {
        let fixture = Fixture::new("show-url");
        let mut config = fixture.config();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::start_with_log(config, no_log()).unwrap();
        assert!(server.wait_ready(Duration::from_secs(10)));
        let public = fixture.dir.join("public.json");
        std::fs::write(&public, public_key_line(&fixture.key)).unwrap();
        let public = public.display().to_string();
        for url in [
            server.snapshot_url(),
            server.url(),
            format!("{}/", server.url()),
        ] {
            let (code, out, err) = run_args(&["snapshot", "show", &url, "--key", &public], &env());
            assert_eq!((code, err.as_str()), (0, ""), "{url}");
            assert!(out.contains("  view          default\n"), "{out}");
            assert!(out.contains("verified with trusted key `cp-test`"), "{out}");
            assert!(
                out.contains("counts: 2 users, 2 groups, 1 owned resources, 1 rules"),
                "{out}"
            );
        }
        let missing = format!("{}/v1/snapshots/nope", server.url());
        let (code, _, err) = run_args(&["snapshot", "show", &missing], &env());
        assert_eq!(code, 1);
        assert!(err.contains("HTTP 404"), "{err}");
        server.stop();
        let (code, _, err) = run_args(&["snapshot", "show", &server.url()], &env());
        assert_eq!(code, 1);
        assert!(err.contains("cannot fetch"), "{err}");
    }

    #[test]
    fn dates_are_utc() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
        ] {
            assert_eq!(utc(seconds), text);
        }
        // Any header value gives a string, never an overflow.
        assert!(utc(i64::MAX).ends_with('Z'));
        assert!(utc(i64::MIN).ends_with('Z'));
    }
}
