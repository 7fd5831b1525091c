//! Local listening for the harness: free loopback ports, and the background HTTP loop shared
//! by the mock issuer and the upstream stubs.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use meshgate_control_plane::issuer::KeySetError;
use serde_json::Value;

/// Errors of the harness servers.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("bind address `{bind}` is not an IP address and port")]
    InvalidBind {
        bind: String,
        source: std::net::AddrParseError,
    },
    #[error(
        "bind address `{bind}` is not a loopback address; harness servers listen locally only"
    )]
    NotLoopback { bind: String },
    #[error("cannot listen on `{bind}`")]
    Listen {
        bind: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start the `{name}` server thread")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot find a free local port")]
    FreePort { source: std::io::Error },
    #[error("no unused local port found after {attempts} attempts")]
    PortsExhausted { attempts: usize },
    #[error(transparent)]
    Keys(#[from] KeySetError),
}

/// How many times `free_port` asks the OS before giving up on finding a port not yet handed out.
const FREE_PORT_ATTEMPTS: usize = 64;

/// A loopback port that is free right now and has not been returned before by this process,
/// so parallel tests don't pick the same one. Another process may still take it before use.
pub fn free_port() -> Result<u16, HarnessError> {
    // `BTreeSet::new` is const, so the set needs no lazy initialisation.
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..FREE_PORT_ATTEMPTS {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|source| HarnessError::FreePort { source })?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(HarnessError::PortsExhausted {
        attempts: FREE_PORT_ATTEMPTS,
    })
}

/// How long the server loop waits for a request before checking whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// A bound socket whose requests are not being served yet; lets a server learn its own port
/// (for example to put it in an issuer URL) before it starts answering.
pub(crate) struct Bound {
    server: tiny_http::Server,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `bind` (`"127.0.0.1:0"` picks a port). Only loopback addresses are accepted: the
    /// issuer's admin endpoints change keys without authentication.
    pub(crate) fn new(bind: &str) -> Result<Bound, HarnessError> {
        let requested: SocketAddr = bind.parse().map_err(|source| HarnessError::InvalidBind {
            bind: bind.to_owned(),
            source,
        })?;
        if !requested.ip().is_loopback() {
            return Err(HarnessError::NotLoopback {
                bind: bind.to_owned(),
            });
        }
        let server = tiny_http::Server::http(requested).map_err(|source| HarnessError::Listen {
            bind: bind.to_owned(),
            source,
        })?;
        // Only a Unix-socket server has no IP address; fall back to what was asked for.
        let addr = server.server_addr().to_ip().unwrap_or(requested);
        Ok(Bound { server, addr })
    }

    /// `http://127.0.0.1:<port>` (IPv6 addresses in brackets).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves each request with `handle` on one background thread, in arrival order.
    pub(crate) fn serve<H>(self, name: &str, mut handle: H) -> Result<Listener, HarnessError>
    where
        H: FnMut(tiny_http::Request) + Send + 'static,
    {
        let server = Arc::new(self.server);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let server = Arc::clone(&server);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("harness-{name}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        // Errors are failed accepts on one connection; the listener lives on.
                        if let Ok(Some(request)) = server.recv_timeout(POLL) {
                            handle(request);
                        }
                    }
                })
                .map_err(|source| HarnessError::Spawn {
                    name: name.to_owned(),
                    source,
                })?
        };
        Ok(Listener {
            server: Some(server),
            stop,
            thread: Some(thread),
            addr: self.addr,
        })
    }
}

/// A running server loop; stops on `stop()` or drop.
pub(crate) struct Listener {
    /// `None` once stopped.
    server: Option<Arc<tiny_http::Server>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Listener {
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the loop to finish; calling it again does nothing.
    /// tiny_http closes the listening socket on its own accept thread, so the port becomes
    /// free shortly after this returns rather than exactly when.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(server) = self.server.take() {
            server.unblock();
            if let Some(thread) = self.thread.take() {
                // A handler that panicked has already reported itself; nothing is left to clean up.
                let _ = thread.join();
            }
            // The loop's reference is gone with its thread; dropping ours closes the server.
            drop(server);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) type JsonResponse = tiny_http::Response<Cursor<Vec<u8>>>;

/// A JSON response with `status` and, when given, a `Cache-Control` header.
pub(crate) fn json_response(
    status: u16,
    body: &Value,
    cache_control: Option<&str>,
) -> JsonResponse {
    let mut response =
        tiny_http::Response::from_data(body.to_string().into_bytes()).with_status_code(status);
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(cache_control.map(|value| ("Cache-Control", value)));
    for (name, value) in headers {
        // Building a header from these constant ASCII strings cannot fail.
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    response
}

/// Reads the request body to the end and drops it, so the connection can be reused.
pub(crate) fn discard_body(request: &mut tiny_http::Request) {
    // A client that hung up mid-body gets its answer written to a closed socket; harmless.
    let _ = std::io::copy(request.as_reader(), &mut std::io::sink());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports.iter().take(3) {
            TcpListener::bind(("127.0.0.1", *port)).unwrap();
        }
    }

    #[test]
    fn only_loopback_binds_are_accepted() {
        assert!(matches!(
            Bound::new("0.0.0.0:0"),
            Err(HarnessError::NotLoopback { .. })
        ));
        assert!(matches!(
            Bound::new("localhost"),
            Err(HarnessError::InvalidBind { .. })
        ));
        let bound = Bound::new("127.0.0.1:0").unwrap();
        assert_ne!(bound.addr.port(), 0);
        assert_eq!(
            bound.url(),
            format!("http://127.0.0.1:{}", bound.addr.port())
        );
    }

    #[test]
    fn stopping_releases_the_port() {
        let bound = Bound::new("127.0.0.1:0").unwrap();
        let port = bound.addr.port();
        let mut listener = bound
            .serve("test", |request| {
                let _ = request.respond(json_response(200, &Value::Null, None));
            })
            .unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        listener.stop();
        listener.stop();
        // The socket closes on tiny_http's accept thread, so give it a moment.
        let rebound = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        assert!(rebound, "port {port} still in use after stop");
    }
}
