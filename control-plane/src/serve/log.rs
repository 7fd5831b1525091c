//! Where the server's log lines go: one line per event, to stderr by default, or to any sink
//! (tests collect them).

use std::sync::Arc;

/// Receives one log line at a time, without a trailing newline.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Writes each line to stderr as `meshgate: <line>`.
pub fn stderr_log() -> LogSink {
    Arc::new(|line: &str| eprintln!("meshgate: {line}"))
}

/// Drops every line.
pub fn no_log() -> LogSink {
    Arc::new(|_: &str| {})
}

/// An error and its causes on one line: `outer: cause: root cause`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
