//! `meshgate audit verify`: checks a file of audit lines against the hash rule and the chain.

use serde_json::Value;

use super::{sha256_hex, GENESIS, SCHEMA};

/// A chain that holds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub lines: usize,
    /// `seq` of the first and last line; `None` for an empty file.
    pub seqs: Option<(i64, i64)>,
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: usize,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("not a JSON audit line")]
    NotJson,
    #[error("the last line is cut short (no newline, not whole JSON)")]
    Truncated,
    #[error("schema is not `{SCHEMA}`")]
    Schema,
    #[error("field `{field}` is missing or of the wrong type")]
    Field { field: &'static str },
    #[error("the line was edited: its hash does not match its content")]
    Edited,
    #[error("gap: expected seq {expected}, found {found}")]
    Gap { expected: i64, found: i64 },
    #[error("out of order: expected seq {expected}, found {found}")]
    Reordered { expected: i64, found: i64 },
    #[error("prev does not match the previous line (a line before it was edited or replaced)")]
    Prev,
    #[error("seq 1 must have prev {GENESIS}")]
    Genesis,
}

/// Checks every line of `text` in order and reports the first break. A file may start in the
/// middle of a chain (seq > 1): its first `prev` is then taken as given.
pub fn verify(text: &[u8]) -> Result<Verified, Broken> {
    let mut previous: Option<(i64, String)> = None;
    let mut first_seq = None;
    let mut count = 0;
    let ends_with_newline = text.last() == Some(&b'\n');
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    if body.is_empty() && text.len() <= 1 {
        return Ok(Verified {
            lines: 0,
            seqs: None,
        });
    }
    let lines: Vec<&[u8]> = body.split(|byte| *byte == b'\n').collect();
    let last_index = lines.len().saturating_sub(1);
    for (index, bytes) in lines.into_iter().enumerate() {
        let number = index + 1;
        let broken = |problem| Broken {
            line: number,
            problem,
        };
        let parsed = std::str::from_utf8(bytes).ok().and_then(|line| {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .map(|v| (line, v))
        });
        let Some((line, value)) = parsed.filter(|(_, value)| value.is_object()) else {
            let cut = index == last_index && !ends_with_newline;
            return Err(broken(if cut {
                Problem::Truncated
            } else {
                Problem::NotJson
            }));
        };
        if value.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
            return Err(broken(Problem::Schema));
        }
        let hash = field_str(&value, "hash").map_err(broken)?;
        let seq = value
            .get("seq")
            .and_then(Value::as_i64)
            .ok_or(Problem::Field { field: "seq" })
            .map_err(broken)?;
        let prev = field_str(&value, "prev").map_err(broken)?;
        let suffix = format!(",\"hash\":\"{hash}\"}}");
        let unhashed = line
            .strip_suffix(&suffix)
            .map(|open| format!("{open}}}"))
            .ok_or_else(|| broken(Problem::Edited))?;
        if sha256_hex(unhashed.as_bytes()) != hash {
            return Err(broken(Problem::Edited));
        }
        match &previous {
            Some((last_seq, last_sha)) => {
                let expected = last_seq.saturating_add(1);
                if seq > expected {
                    return Err(broken(Problem::Gap {
                        expected,
                        found: seq,
                    }));
                }
                if seq < expected {
                    return Err(broken(Problem::Reordered {
                        expected,
                        found: seq,
                    }));
                }
                if prev != last_sha {
                    return Err(broken(Problem::Prev));
                }
            }
            None => {
                if seq == 1 && prev != GENESIS {
                    return Err(broken(Problem::Genesis));
                }
                first_seq = Some(seq);
            }
        }
        previous = Some((seq, sha256_hex(bytes)));
        count = number;
    }
    Ok(Verified {
        lines: count,
        seqs: first_seq.zip(previous.map(|(seq, _)| seq)),
    })
}

fn field_str<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, Problem> {
    value
        .get(field)
        .and_then(Value::as_str)
        .ok_or(Problem::Field { field })
}
