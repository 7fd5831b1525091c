//! A deliberately dumb HTTP/1.1 client: it sends the request target byte for byte, so
//! tests can send `//admin`, `/x/../admin` or `%2F` exactly as an attacker would (URL
//! libraries normalize those away before they reach Envoy).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("i/o with 127.0.0.1:{port}: {source}")]
    Io {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed response: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request to 127.0.0.1:`port` with `Connection: close` and reads the response.
pub fn send(
    port: u16,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Response, HttpError> {
    let io = |source| HttpError::Io { port, source };
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        request.push_str("content-length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    // Read until the response is complete rather than until Envoy closes: after a local
    // reply Envoy waits `delayed_close_timeout` (1 s) for the client to close first.
    let mut raw = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if is_complete(&raw) {
            break;
        }
    }
    parse(&raw)
}

/// Whether `raw` holds a whole response: headers plus `content-length` bytes, or a
/// chunked body up to its last chunk. Without either, only the close ends it.
fn is_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_ascii_lowercase();
    let body = raw.get(split.saturating_add(4)..).unwrap_or_default();
    for line in head.split("\r\n") {
        if let Some(len) = line.strip_prefix("content-length:") {
            return len
                .trim()
                .parse::<usize>()
                .is_ok_and(|len| body.len() >= len);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

fn parse(raw: &[u8]) -> Result<Response, HttpError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HttpError::Malformed(String::from("no end of headers")))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let body = raw.get(split.saturating_add(4)..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line `{status_line}`")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| HttpError::Malformed(String::from("chunk size line")))?;
        let size_text =
            String::from_utf8_lossy(data.get(..line_end).unwrap_or_default()).into_owned();
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| HttpError::Malformed(format!("chunk size `{size_text}`")))?;
        let start = line_end.saturating_add(2);
        if size == 0 {
            return Ok(out);
        }
        let end = start.saturating_add(size);
        out.extend_from_slice(
            data.get(start..end)
                .ok_or_else(|| HttpError::Malformed(String::from("short chunk")))?,
        );
        data = data.get(end.saturating_add(2)..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let plain = parse(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\ncontent-length: 2\r\n\r\nhi",
        )
        .unwrap();
        assert_eq!(plain.status, 401);
        assert_eq!(plain.header("www-authenticate"), Some("Bearer"));
        assert_eq!(plain.text(), "hi");
        let chunked = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(chunked.text(), "abcde");
        assert!(parse(b"garbage").is_err());
    }
}
