//! Errors that make a catalog read unusable. The caller keeps its last good snapshot.

use std::path::PathBuf;

/// Reading a catalog failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog directory `{}`", .path.display())]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read catalog file `{}`", .path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog file `{}` is not valid YAML", .path.display())]
    Yaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
    /// The file kept changing (size or modification time) while it was read.
    #[error("catalog file `{}` changed while it was read, {reads} times", .path.display())]
    Unstable { path: PathBuf, reads: usize },
    #[error("catalog directory `{}` nests deeper than {max} levels", .path.display())]
    TooDeep { path: PathBuf, max: usize },
    /// The catalog could not be reached (DNS, connection refused, timeout, TLS, bad URL).
    #[error("cannot reach the catalog at `{url}`")]
    Transport {
        url: String,
        source: Box<ureq::Transport>,
    },
    /// The catalog's TLS certificate was refused: signed by a CA that is neither a public
    /// root nor in `catalog.backstage.ca_file`, expired, or for another name.
    #[error("the catalog's TLS certificate at `{url}` is not trusted (a private CA goes in `catalog.backstage.ca_file`)")]
    Certificate { url: String, source: rustls::Error },
    /// The TLS settings could not be built (never expected with the ring provider).
    #[error("cannot set up TLS for the catalog")]
    Tls { source: rustls::Error },
    /// 401 or 403: no token, a wrong one, or one without catalog read permission.
    #[error(
        "the catalog refused the request to `{url}` with status {status}; check the catalog token"
    )]
    Unauthorized { url: String, status: u16 },
    #[error("the catalog answered `{url}` with status {status}: {body}")]
    Status {
        url: String,
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response is not the JSON page the by-query API returns.
    #[error("the catalog's answer to `{url}` is not a by-query page")]
    Decode {
        url: String,
        source: serde_json::Error,
    },
    /// A `nextCursor` came back that was already followed; paging would never end.
    #[error("the catalog's cursor for `{url}` repeats; stopped after {pages} pages")]
    CursorLoop { url: String, pages: usize },
}
