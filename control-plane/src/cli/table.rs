//! Every command and option of the `meshgate` command line, in help order. Parsing finds the
//! command here ([`find`]) and reads its options against its entry ([`super::args::Args`]);
//! `meshgate help` is printed from the same entries ([`usage`]).

use std::fmt::Write as _;

use super::args::{CommandSpec, OptionSpec};
use super::{access, audit, check, keygen, keys, serve, show, token, Command};

const TITLE: &str = "meshgate: identity-aware JWT and RBAC authorization for Envoy";
const EXIT_STATUS: &str = "exit status: 0 success, 1 failure, 2 unusable command line\n\
                           \x20            (snapshot show: also an unreadable or unverifiable snapshot;\n\
                           \x20            audit verify: 1 a broken chain, 2 an unreadable file)";
/// Column of a command's description in the usage lines.
const ABOUT_COLUMN: usize = 44;
/// Column of an option's description.
const HELP_COLUMN: usize = 23;

const fn option(name: &'static str, value: Option<&'static str>, help: &'static str) -> OptionSpec {
    OptionSpec { name, value, help }
}

pub(super) static TOKEN: CommandSpec = CommandSpec {
    words: &["token"],
    form: None,
    synopsis: "--sub SUBJECT [options]",
    about: "mint a token with the demo issuer's keys",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--keys",
            Some("PATH"),
            "issuer key file (default: $MESHGATE_DEMO_DIR/issuer-keys.json,\n\
             else .meshgate/demo/issuer-keys.json)",
        ),
        option("--sub", Some("SUBJECT"), "sub claim (required)"),
        option("--groups", Some("A,B"), "groups claim; repeatable"),
        option(
            "--aud",
            Some("AUDIENCE"),
            "aud claim; repeatable or comma separated (default: meshgate-demo)",
        ),
        option(
            "--alg",
            Some("ALG"),
            "RS256 (default), RS384, RS512, PS256, PS384, PS512, ES256, EdDSA,\n\
             or HS256, HS384, HS512 with --hs-secret",
        ),
        option(
            "--ttl",
            Some("SECONDS"),
            "lifetime counted from iat (default: 3600)",
        ),
        option("--iat-offset", Some("N"), "iat = now + N seconds"),
        option(
            "--nbf-offset",
            Some("N"),
            "nbf = now + N seconds (no nbf unless given)",
        ),
        option(
            "--exp-offset",
            Some("N"),
            "exp = now + N seconds, instead of --ttl",
        ),
        option("--no-exp", None, "leave exp out"),
        option("--iss", Some("URL"), "iss instead of the key file's issuer"),
        option(
            "--kid",
            Some("KID"),
            "header kid instead of the signing key's",
        ),
        option(
            "--unpublished-key",
            None,
            "sign with a valid key that is not in the JWKS",
        ),
        option("--email", Some("EMAIL"), "email claim"),
        option(
            "--claim",
            Some("NAME=VALUE"),
            "extra claim, replacing any claim of that name; VALUE is JSON,\n\
             or a plain string when it is not valid JSON; repeatable",
        ),
        option(
            "--hs-secret",
            Some("SECRET"),
            "shared secret for HS256, HS384, HS512",
        ),
    ],
    parse: token::parse,
};

pub(super) static TOKEN_BACKSTAGE: CommandSpec = CommandSpec {
    words: &["token"],
    form: Some("--backstage"),
    synopsis: "--user NAME [--ent] [--backstage-url URL]",
    about: "sign NAME in at the demo's fake Backstage and print\n\
            their Backstage user token",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--backstage",
            None,
            "sign in at a Backstage backend instead of minting (this form)",
        ),
        option(
            "--user",
            Some("NAME"),
            "the user, as an entity name or ref (required); the token's sub\n\
             must be that user",
        ),
        option(
            "--ent",
            None,
            "ask for the ownership refs in the token (`ent`)",
        ),
        option(
            "--backstage-url",
            Some("URL"),
            "the backend (default http://127.0.0.1:17007)",
        ),
    ],
    parse: token::parse_backstage,
};

pub(super) static KEYS_INIT: CommandSpec = CommandSpec {
    words: &["keys", "init"],
    form: None,
    synopsis: "[--keys PATH] [--issuer URL]",
    about: "create the demo issuer key file if absent",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option("--keys", Some("PATH"), "as for token"),
        option(
            "--issuer",
            Some("URL"),
            "issuer of a new key file (default: http://127.0.0.1:18080)",
        ),
    ],
    parse: keys::parse,
};

pub(super) static CHECK: CommandSpec = CommandSpec {
    words: &["check"],
    form: None,
    synopsis: "--config FILE --url URL [options]",
    about: "the decision for one request, explained",
    note: " (exit 0 allow, 1 deny)",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--config",
            Some("FILE"),
            "plugin configuration (JSON), or a YAML file holding one",
        ),
        option(
            "--url",
            Some("URL"),
            "request URL; its host is the :authority",
        ),
        option("--method", Some("METHOD"), "default GET"),
        option(
            "--token",
            Some("JWT|@FILE"),
            "token, verified with the config's local_jwks (and --jwks)",
        ),
        option(
            "--claims",
            Some("JSON|@FILE"),
            "claims taken as verified instead of a token (preview)",
        ),
        option(
            "--header",
            Some("NAME:VALUE"),
            "extra request header; repeatable",
        ),
        option(
            "--jwks",
            Some("PROVIDER=FILE"),
            "keys for a provider that uses remote_jwks",
        ),
        option(
            "--snapshot",
            Some("FILE"),
            "catalog snapshot, verified with the config's snapshot.public_keys\n\
             (without it, a config with `snapshot` has no catalog)",
        ),
        option("--now", Some("UNIX_SECONDS"), "clock (default: now)"),
        option("--json", None, "the explanation as JSON"),
    ],
    parse: check::parse_check,
};

pub(super) static VALIDATE: CommandSpec = CommandSpec {
    words: &["validate"],
    form: None,
    synopsis: "FILE...",
    about: "compile every meshgate configuration in plugin\n\
            JSON, Istio manifests or Envoy bootstraps, naming\n\
            any bad field",
    note: "",
    operands: Some("FILE..."),
    single_operand: false,
    options: &[
        option(
            "--istio",
            None,
            "accepted, not needed: `.json` files are plugin JSON, YAML files are\n\
             searched for Istio WasmPlugins and Envoy bootstraps",
        ),
        option("--envoy", None, "accepted, not needed (as --istio)"),
    ],
    parse: check::parse_validate,
};

pub(super) static KEYGEN: CommandSpec = CommandSpec {
    words: &["keygen"],
    form: None,
    synopsis: "--out FILE [--kid KID]",
    about: "create a snapshot signing key (mode 0600, never\n\
            replaced) and print its public key as one\n\
            JSON line for the filter config",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--out",
            Some("FILE"),
            "the key file to create (required); never replaced",
        ),
        option(
            "--kid",
            Some("KID"),
            "key id (default: snapshot- and the start of the public key)",
        ),
    ],
    parse: keygen::parse,
};

pub(super) static SERVE: CommandSpec = CommandSpec {
    words: &["serve"],
    form: None,
    synopsis: "--config FILE",
    about: "serve signed catalog snapshots over HTTP,\n\
            resyncing from Backstage (docs/control-plane.md)",
    note: "",
    operands: None,
    single_operand: false,
    options: &[option(
        "--config",
        Some("FILE"),
        "control-plane configuration (YAML, docs/control-plane.md; required)",
    )],
    parse: serve::parse_serve,
};

pub(super) static SNAPSHOT_BUILD: CommandSpec = CommandSpec {
    words: &["snapshot", "build"],
    form: None,
    synopsis: "--config FILE --out FILE [--force]",
    about: "one sync with the server's config, written to\n\
            FILE (left alone when the content is unchanged);\n\
            fails when a publish guard refuses the catalog\n\
            read, unless --force",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--config",
            Some("FILE"),
            "control-plane configuration, as for serve (required)",
        ),
        option(
            "--out",
            Some("FILE"),
            "the snapshot file to write (required)",
        ),
        option(
            "--force",
            None,
            "publish even when a guard refuses the read",
        ),
    ],
    parse: serve::parse_build,
};

pub(super) static SNAPSHOT_SHOW: CommandSpec = CommandSpec {
    words: &["snapshot", "show"],
    form: None,
    synopsis: "FILE|URL [--user REF] [--key FILE | --config FILE] [--json]",
    about: "what a signed snapshot holds: header, counts,\n\
            users, groups, owned resources, rules; with\n\
            --user, that user's groups and what they own",
    note: "",
    operands: Some("FILE|URL"),
    single_operand: true,
    options: &[
        option(
            "--user",
            Some("REF"),
            "only this user (`user:default/dave`, `dave` or an email): their\n\
             closed groups and the resources they own through them",
        ),
        option(
            "--key",
            Some("FILE"),
            "verify the signature with this key: a public key line from\n\
             `meshgate keygen` (one, or a JSON list), or the signing key file",
        ),
        option(
            "--config",
            Some("FILE"),
            "verify as the filter would: the plugin configuration's\n\
             snapshot.public_keys and size limits",
        ),
        option("--json", None, "print JSON instead of text"),
    ],
    parse: show::parse,
};

pub(super) static AUDIT_VERIFY: CommandSpec = CommandSpec {
    words: &["audit", "verify"],
    form: None,
    synopsis: "FILE",
    about: "check an access audit log's hash chain: the\n\
            first gap, edit, reordering or cut line\n\
            (exit 0 intact, 1 broken, 2 unreadable)",
    note: "",
    operands: Some("FILE"),
    single_operand: true,
    options: &[],
    parse: audit::parse_verify,
};

// Options every `access` command takes.
const ACCESS_URL: OptionSpec = option(
    "--url",
    Some("URL"),
    "the control plane (default: http://127.0.0.1:18090)",
);
const ACCESS_TOKEN: OptionSpec = option(
    "--token",
    Some("TOKEN"),
    "your token (default: $MESHGATE_TOKEN)",
);
const ACCESS_TOKEN_FILE: OptionSpec =
    option("--token-file", Some("PATH"), "read your token from a file");
const ACCESS_JSON: OptionSpec = option("--json", None, "print the API's JSON answer");

pub(super) static ACCESS_REQUEST: CommandSpec = CommandSpec {
    words: &["access", "request"],
    form: None,
    synopsis: "--target T --duration D [options]",
    about: "ask for access for a while (exit 1: refused)",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option(
            "--target",
            Some("T"),
            "KIND/ID (airflow.dag/etl_daily) or group:NAMESPACE/NAME",
        ),
        option("--duration", Some("D"), "15m, 1h30m, PT1H"),
        option("--reason", Some("TEXT"), "why (the policy may require one)"),
        ACCESS_URL,
        ACCESS_TOKEN,
        ACCESS_TOKEN_FILE,
        ACCESS_JSON,
    ],
    parse: access::parse_request,
};

pub(super) static ACCESS_LIST: CommandSpec = CommandSpec {
    words: &["access", "list"],
    form: None,
    synopsis: "[--mine | --pending] [options]",
    about: "list access requests (admins: all)",
    note: "",
    operands: None,
    single_operand: false,
    options: &[
        option("--mine", None, "the requests you made"),
        option("--pending", None, "the requests waiting for your review"),
        ACCESS_URL,
        ACCESS_TOKEN,
        ACCESS_TOKEN_FILE,
        ACCESS_JSON,
    ],
    parse: access::parse_list,
};

/// Options of the commands that decide on a request or grant (approve, deny, revoke).
const DECISION_OPTIONS: &[OptionSpec] = &[
    option("--comment", Some("TEXT"), "said in the audit log"),
    ACCESS_URL,
    ACCESS_TOKEN,
    ACCESS_TOKEN_FILE,
    ACCESS_JSON,
];

pub(super) static ACCESS_APPROVE: CommandSpec = CommandSpec {
    words: &["access", "approve"],
    form: None,
    synopsis: "ID [options]",
    about: "approve an access request",
    note: "",
    operands: Some("ID"),
    single_operand: true,
    options: DECISION_OPTIONS,
    parse: access::parse_approve,
};

pub(super) static ACCESS_DENY: CommandSpec = CommandSpec {
    words: &["access", "deny"],
    form: None,
    synopsis: "ID [options]",
    about: "deny an access request",
    note: "",
    operands: Some("ID"),
    single_operand: true,
    options: DECISION_OPTIONS,
    parse: access::parse_deny,
};

pub(super) static ACCESS_REVOKE: CommandSpec = CommandSpec {
    words: &["access", "revoke"],
    form: None,
    synopsis: "GRANT_ID [options]",
    about: "end a grant now",
    note: "",
    operands: Some("GRANT_ID"),
    single_operand: true,
    options: DECISION_OPTIONS,
    parse: access::parse_revoke,
};

pub(super) static HELP: CommandSpec = CommandSpec {
    words: &["help"],
    form: None,
    synopsis: "",
    about: "show this text",
    note: "",
    operands: None,
    single_operand: false,
    options: &[],
    parse: parse_help,
};

/// Every command, in help order.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &TOKEN,
    &TOKEN_BACKSTAGE,
    &KEYS_INIT,
    &CHECK,
    &VALIDATE,
    &KEYGEN,
    &SERVE,
    &SNAPSHOT_BUILD,
    &SNAPSHOT_SHOW,
    &AUDIT_VERIFY,
    &ACCESS_REQUEST,
    &ACCESS_LIST,
    &ACCESS_APPROVE,
    &ACCESS_DENY,
    &ACCESS_REVOKE,
    &HELP,
];

/// `help`, `--help` and `-h` take anything after them and print the help.
fn parse_help(
    _: &mut super::args::Args<'_>,
    _: &super::CliEnv,
) -> Result<Command, super::CliError> {
    Ok(Command::Help)
}

/// The command `args` names and the arguments after its words, or `None` when no command
/// has those words. A form (`token --backstage`) is chosen when its switch is given.
pub(super) fn find(args: &[String]) -> Option<(&'static CommandSpec, &[String])> {
    let first = args.first().map(String::as_str);
    if matches!(first, None | Some("--help" | "-h")) {
        return Some((&HELP, args.get(1..).unwrap_or_default()));
    }
    let mut best: Option<(&'static CommandSpec, &[String])> = None;
    for spec in COMMANDS {
        let words = spec.words.len();
        let named = args.len() >= words
            && spec
                .words
                .iter()
                .zip(args)
                .all(|(word, arg)| *word == arg.as_str());
        if !named {
            continue;
        }
        let rest = args.get(words..).unwrap_or_default();
        let form_given = |form: &str| {
            rest.iter().any(|arg| {
                arg == form || arg.strip_prefix(form).is_some_and(|r| r.starts_with('='))
            })
        };
        let fits = match spec.form {
            Some(form) => form_given(form),
            None => !COMMANDS
                .iter()
                .any(|other| other.words == spec.words && other.form.is_some_and(form_given)),
        };
        if fits && best.is_none_or(|(found, _)| found.words.len() < words) {
            best = Some((spec, rest));
        }
    }
    best
}

/// The help text: one usage line per command, then each command's options.
pub(super) fn usage() -> String {
    let mut text = format!("{TITLE}\n\nusage:\n");
    for spec in COMMANDS {
        let mut line = format!("  meshgate {}", spec.name());
        if !spec.synopsis.is_empty() {
            line.push(' ');
            line.push_str(spec.synopsis);
        }
        push_columns(&mut text, &line, spec.about, ABOUT_COLUMN);
    }
    for spec in COMMANDS.iter().filter(|spec| !spec.options.is_empty()) {
        let _ = write!(text, "\n{} options{}:\n", spec.name(), spec.note);
        for option in spec.options {
            let mut left = format!("  {}", option.name);
            if let Some(value) = option.value {
                left.push(' ');
                left.push_str(value);
            }
            push_columns(&mut text, &left, option.help, HELP_COLUMN);
        }
    }
    text.push('\n');
    text.push_str(EXIT_STATUS);
    text.push('\n');
    text
}

/// `left`, then `right`'s lines from `column` on: on the same line when `left` leaves room.
fn push_columns(text: &mut String, left: &str, right: &str, column: usize) {
    let mut lines = right.lines();
    text.push_str(left);
    if left.chars().count() < column {
        if let Some(first) = lines.next() {
            let pad = column - left.chars().count();
            let _ = write!(text, "{:pad$}{first}", "");
        }
    }
    text.push('\n');
    for line in lines {
        let _ = writeln!(text, "{:column$}{line}", "");
    }
}
