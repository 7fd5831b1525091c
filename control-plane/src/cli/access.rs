//! `meshgate access request|list|approve|deny|revoke`: the access-request API of a running
//! control plane (docs/access.md), as the caller named by `--token`, `--token-file` or
//! `$MESHGATE_TOKEN`. Exit 0 when the API accepted the call, 1 when it refused it (its code
//! and message are printed), 2 for an unusable command line or an unreachable server.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use super::args::{Arg, Args};
use super::{write_out, CliEnv, CliError, Command};

/// `--url` when not given: `meshgate serve`'s default listen address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:18090";
/// Where the token comes from when neither `--token` nor `--token-file` is given.
pub const TOKEN_ENV: &str = "MESHGATE_TOKEN";
const TIMEOUT: Duration = Duration::from_secs(30);

/// What to ask the API.
enum Call {
    Request {
        target: String,
        duration: String,
        reason: Option<String>,
    },
    List {
        mine: bool,
        pending: bool,
    },
    Review {
        id: String,
        verdict: &'static str,
        comment: Option<String>,
    },
    Revoke {
        id: String,
        comment: Option<String>,
    },
}

pub(super) struct AccessCommand {
    call: Call,
    url: String,
    token: Option<String>,
    token_file: Option<String>,
    json: bool,
}

/// Options every access command takes; true when `flag` was one of them.
fn common(command: &mut AccessCommand, flag: &super::args::Flag<'_>) -> Result<bool, CliError> {
    match flag.name {
        "--url" => command.url = flag.value()?.trim_end_matches('/').to_owned(),
        "--token" => command.token = Some(flag.value()?.to_owned()),
        "--token-file" => command.token_file = Some(flag.value()?.to_owned()),
        "--json" => command.json = true,
        _ => return Ok(false),
    }
    Ok(true)
}

fn new(call: Call) -> AccessCommand {
    AccessCommand {
        call,
        url: DEFAULT_URL.to_owned(),
        token: None,
        token_file: None,
        json: false,
    }
}

pub(super) fn parse_request(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut command = new(Call::Request {
        target: String::new(),
        duration: String::new(),
        reason: None,
    });
    let (mut target, mut duration, mut reason) = (None, None, None);
    while let Some(flag) = args.next_flag()? {
        if common(&mut command, &flag)? {
            continue;
        }
        match flag.name {
            "--target" => target = Some(flag.value()?.to_owned()),
            "--duration" => duration = Some(flag.value()?.to_owned()),
            "--reason" => reason = Some(flag.value()?.to_owned()),
            _ => return Err(flag.unhandled()),
        }
    }
    command.call = Call::Request {
        target: target.ok_or(CliError::MissingFlag { flag: "--target" })?,
        duration: duration.ok_or(CliError::MissingFlag { flag: "--duration" })?,
        reason,
    };
    Ok(Command::Access(command))
}

pub(super) fn parse_list(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut command = new(Call::List {
        mine: false,
        pending: false,
    });
    let (mut mine, mut pending) = (false, false);
    while let Some(flag) = args.next_flag()? {
        if common(&mut command, &flag)? {
            continue;
        }
        match flag.name {
            "--mine" => mine = true,
            "--pending" => pending = true,
            _ => return Err(flag.unhandled()),
        }
    }
    command.call = Call::List { mine, pending };
    Ok(Command::Access(command))
}

/// `approve ID`, `deny ID`, `revoke GRANT_ID`: one operand and `--comment`.
fn parse_one(
    args: &mut Args<'_>,
    call: fn(String, Option<String>) -> Call,
) -> Result<Command, CliError> {
    let mut command = new(call(String::new(), None));
    let (mut id, mut comment) = (None, None);
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Operand(operand) => id = Some(operand.to_owned()),
            Arg::Flag(flag) => {
                if common(&mut command, &flag)? {
                    continue;
                }
                match flag.name {
                    "--comment" => comment = Some(flag.value()?.to_owned()),
                    _ => return Err(flag.unhandled()),
                }
            }
        }
    }
    let id = id.ok_or(CliError::MissingFlag { flag: "ID" })?;
    command.call = call(id, comment);
    Ok(Command::Access(command))
}

pub(super) fn parse_approve(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    parse_one(args, |id, comment| Call::Review {
        id,
        verdict: "approve",
        comment,
    })
}

pub(super) fn parse_deny(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    parse_one(args, |id, comment| Call::Review {
        id,
        verdict: "deny",
        comment,
    })
}

pub(super) fn parse_revoke(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    parse_one(args, |id, comment| Call::Revoke { id, comment })
}

/// `airflow.dag/etl_daily` → a resource; `group:default/x` or `group:x` → a group.
fn target_json(target: &str) -> Result<Value, CliError> {
    let invalid = || CliError::Invalid {
        what: String::from("--target"),
        detail: format!("`{target}` is not KIND/ID (airflow.dag/etl_daily) or group:NAME"),
    };
    if let Some(group) = target.strip_prefix("group:") {
        if group.is_empty() {
            return Err(invalid());
        }
        return Ok(json!({"group": target}));
    }
    match target.split_once('/') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok(json!({"resource": {"kind": kind, "id": id}}))
        }
        _ => Err(invalid()),
    }
}

fn token(command: &AccessCommand) -> Result<String, CliError> {
    if let Some(token) = &command.token {
        return Ok(token.trim().to_owned());
    }
    if let Some(file) = &command.token_file {
        return std::fs::read_to_string(file)
            .map(|text| text.trim().to_owned())
            .map_err(|source| CliError::Read {
                path: file.clone(),
                source,
            });
    }
    std::env::var(TOKEN_ENV)
        .map(|token| token.trim().to_owned())
        .map_err(|_| CliError::MissingFlag {
            flag: "--token (or --token-file, or $MESHGATE_TOKEN)",
        })
}

pub(super) fn run(command: AccessCommand, out: &mut dyn Write) -> Result<u8, CliError> {
    let token = token(&command)?;
    let (method, path, body) = match &command.call {
        Call::Request {
            target,
            duration,
            reason,
        } => {
            let mut body = json!({"target": target_json(target)?, "duration": duration});
            if let (Some(reason), Some(object)) = (reason, body.as_object_mut()) {
                object.insert(String::from("reason"), json!(reason));
            }
            ("POST", String::from("/v1/access/requests"), Some(body))
        }
        Call::List { mine, pending } => {
            let query = match (mine, pending) {
                (true, _) => "?mine=1",
                (false, true) => "?pending_for_me=1",
                (false, false) => "",
            };
            ("GET", format!("/v1/access/requests{query}"), None)
        }
        Call::Review {
            id,
            verdict,
            comment,
        } => (
            "POST",
            format!("/v1/access/requests/{id}/{verdict}"),
            Some(json!({"comment": comment})),
        ),
        Call::Revoke { id, comment } => (
            "POST",
            format!("/v1/access/grants/{id}/revoke"),
            Some(json!({"comment": comment})),
        ),
    };
    let url = format!("{}{path}", command.url);
    let request = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .build()
        .request(method, &url)
        .set("Authorization", &format!("Bearer {token}"));
    let result = match &body {
        Some(body) => request.send_json(body.clone()),
        None => request.call(),
    };
    let (status, response) = match result {
        Ok(response) => (response.status(), response),
        Err(ureq::Error::Status(status, response)) => (status, response),
        Err(error) => {
            return Err(CliError::Invalid {
                what: String::from("--url"),
                detail: format!("cannot reach `{url}`: {error}"),
            })
        }
    };
    let text = response.into_string().map_err(|source| CliError::Read {
        path: url.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if command.json {
        write_out(out, &format!("{value:#}\n"))?;
    } else {
        write_out(out, &human(status, &value))?;
    }
    Ok(u8::from(!(200..300).contains(&status)))
}

/// A short table, or the refusal.
fn human(status: u16, value: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(error) = value.get("error") {
        return format!(
            "refused ({status} {}): {}\n",
            text(error.get("code").unwrap_or(&Value::Null)),
            text(error.get("message").unwrap_or(&Value::Null))
        );
    }
    let target = |v: &Value| match (v.pointer("/target/group"), v.pointer("/target/resource")) {
        (Some(group), _) => text(group),
        (None, Some(resource)) => format!(
            "{}/{}",
            text(resource.get("kind").unwrap_or(&Value::Null)),
            text(resource.get("id").unwrap_or(&Value::Null))
        ),
        _ => String::from("-"),
    };
    let row = |v: &Value| {
        let field = |name: &str| v.get(name).map_or_else(|| String::from("-"), text);
        if v.get("not_after_ms").is_some() {
            format!(
                "{:<38} {:<24} {:<32} until {}\n",
                field("id"),
                field("user"),
                target(v),
                field("not_after_ms")
            )
        } else {
            format!(
                "{:<38} {:<10} {:<24} {:<32} {}\n",
                field("id"),
                field("state"),
                field("requester"),
                target(v),
                field("duration")
            )
        }
    };
    let list = value
        .get("requests")
        .or_else(|| value.get("grants"))
        .and_then(Value::as_array);
    match list {
        Some(items) if items.is_empty() => String::from("(none)\n"),
        Some(items) => items.iter().map(row).collect(),
        None => {
            let mut line = row(value);
            if let Some(condition) = value.pointer("/auto_approved/condition") {
                line.push_str(&format!("auto-approved by `{}`\n", text(condition)));
            }
            if let Some(grant) = value.pointer("/grant/id") {
                line.push_str(&format!("grant {}\n", text(grant)));
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_kind_slash_id_or_group_refs() {
        let cases = [
            (
                "airflow.dag/etl_daily",
                Some(json!({"resource": {"kind": "airflow.dag", "id": "etl_daily"}})),
            ),
            (
                "buildkite.pipeline/acme/deploy",
                Some(json!({"resource": {"kind": "buildkite.pipeline", "id": "acme/deploy"}})),
            ),
            ("group:default/x", Some(json!({"group": "group:default/x"}))),
            ("etl_daily", None),
            ("group:", None),
            ("/x", None),
        ];
        for (text, want) in cases {
            assert_eq!(target_json(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn refusals_and_tables_read_short() {
        let refused = human(
            409,
            &json!({"error": {"code": "already_decided", "message": "the request is already approved"}}),
        );
        assert_eq!(
            refused,
            "refused (409 already_decided): the request is already approved\n"
        );
        let listed = human(
            200,
            &json!({"requests": [{"id": "req_1", "state": "pending",
            "requester": "user:default/carol", "target": {"group": "group:default/x"}, "duration": "1h"}]}),
        );
        assert!(
            listed.contains("req_1")
                && listed.contains("pending")
                && listed.contains("group:default/x"),
            "{listed}"
        );
        assert_eq!(human(200, &json!({"grants": []})), "(none)\n");
    }
}
