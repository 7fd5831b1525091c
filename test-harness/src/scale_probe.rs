//! What scale runs measure with, besides Envoy's own admin interface: memory figures from
//! `/proc/<pid>/status`, a loopback TCP proxy that counts the bytes it carries (for what a
//! sidecar downloads from the control plane), and a child process that is killed when dropped.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often blocked proxy threads look at the stop flag.
const PROXY_POLL: Duration = Duration::from_millis(100);
/// Lines of a child's log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no `{field}` line in `{path}`")]
    NoField { field: String, path: PathBuf },
    #[error("cannot {action} for the byte-counting proxy: {source}")]
    Proxy {
        action: &'static str,
        source: std::io::Error,
    },
}

/// A `/proc/<pid>/status` memory line (`VmRSS`, `VmHWM`, …) in KiB: `None` when the field is
/// absent, repeated, or not `<number> kB`.
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    let mut values = status.lines().filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then_some(value)
    });
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let number = value.trim().strip_suffix("kB")?.trim();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// The `field` line of a live process's status, in KiB.
pub fn process_kib(pid: u32, field: &str) -> Result<u64, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).map_err(|source| ProbeError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    status_field_kib(&status, field).ok_or(ProbeError::NoField {
        field: field.to_owned(),
        path,
    })
}

/// Bytes carried by a [`ByteCountingProxy`] so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCounts {
    /// From the upstream to the client (what the client downloads).
    pub to_client: u64,
    /// From the client to the upstream.
    pub to_upstream: u64,
    pub connections: u64,
}

/// A loopback TCP proxy to `127.0.0.1:<upstream>` that counts bytes both ways; stops when
/// dropped.
pub struct ByteCountingProxy {
    port: u16,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Counters {
    to_client: AtomicU64,
    to_upstream: AtomicU64,
    connections: AtomicU64,
}

impl ByteCountingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream_port`.
    pub fn start(upstream_port: u16) -> Result<ByteCountingProxy, ProbeError> {
        let proxy = |action| move |source| ProbeError::Proxy { action, source };
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(proxy("listen"))?;
        let port = listener.local_addr().map_err(proxy("listen"))?.port();
        listener.set_nonblocking(true).map_err(proxy("listen"))?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("byte-proxy".into())
                .spawn(move || accept_loop(&listener, upstream_port, &counters, &stop))
                .map_err(proxy("start a thread"))?
        };
        Ok(ByteCountingProxy {
            port,
            counters,
            stop,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn counts(&self) -> ByteCounts {
        ByteCounts {
            to_client: self.counters.to_client.load(Ordering::Relaxed),
            to_upstream: self.counters.to_upstream.load(Ordering::Relaxed),
            connections: self.counters.connections.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ByteCountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: u16,
    counters: &Arc<Counters>,
    stop: &Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((client, _)) => {
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    // The upstream is down: the client sees the connection close.
                    continue;
                };
                pipe(&client, &server, counters, stop);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(PROXY_POLL),
        }
    }
}

/// Two copying threads, one per direction; each ends on EOF, an error or the stop flag.
fn pipe(client: &TcpStream, server: &TcpStream, counters: &Arc<Counters>, stop: &Arc<AtomicBool>) {
    let streams = client.try_clone().and_then(|c| {
        Ok((
            c,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ))
    });
    let Ok((client_read, server_write, client_write, server_read)) = streams else {
        return;
    };
    for (from, to, upstream_bound) in [
        (client_read, server_write, true),
        (server_read, client_write, false),
    ] {
        let (counters, stop) = (Arc::clone(counters), Arc::clone(stop));
        // A thread that cannot start leaves this connection without that direction; the
        // client then times out, which the run reports as a failed poll.
        let _ = std::thread::Builder::new()
            .name("byte-proxy-copy".into())
            .spawn(move || copy(from, to, upstream_bound, &counters, &stop));
    }
}

fn copy(
    mut from: TcpStream,
    mut to: TcpStream,
    upstream_bound: bool,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(PROXY_POLL));
    let mut buffer = vec![0_u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let Some(chunk) = buffer.get(..n) else { break };
                if to.write_all(chunk).is_err() {
                    break;
                }
                let counter = if upstream_bound {
                    &counters.to_upstream
                } else {
                    &counters.to_client
                };
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A child process with its output in a log file, killed and reaped when dropped.
#[derive(Debug)]
pub struct SupervisedProcess {
    child: Child,
    log_path: PathBuf,
}

impl SupervisedProcess {
    /// Starts `command` with stdout and stderr appended to `log_path`.
    pub fn spawn(mut command: Command, log_path: &Path) -> Result<SupervisedProcess, ProbeError> {
        let io = |action| {
            let path = log_path.to_owned();
            move |source| ProbeError::Io {
                action,
                path,
                source,
            }
        };
        let stderr = File::create(log_path).map_err(io("create"))?;
        let stdout = stderr.try_clone().map_err(io("create"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(io("start a process logging to"))?;
        Ok(SupervisedProcess {
            child,
            log_path: log_path.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines.get(start..).unwrap_or_default().join("\n")
    }

    /// Kills and reaps the process now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SupervisedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_strictly() {
        let status = "Name:\tenvoy\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n";
        let cases: &[(&str, &str, Option<u64>)] = &[
            ("real", status, Some(65432)),
            ("empty", "", None),
            ("truncated", "VmRSS:\t 654", None),
            ("no unit", "VmRSS:\t 654 \n", None),
            ("duplicated", "VmRSS:\t 1 kB\nVmRSS:\t 2 kB\n", None),
            ("oversized", "VmRSS:\t 99999999999999999999999 kB\n", None),
            ("hostile sign", "VmRSS:\t -5 kB\n", None),
            ("hostile prefix", "XVmRSS:\t 5 kB\n", None),
            ("empty number", "VmRSS:\t kB\n", None),
        ];
        for (name, text, expected) in cases {
            assert_eq!(status_field_kib(text, "VmRSS"), *expected, "{name}");
        }
        assert_eq!(status_field_kib(status, "VmHWM"), Some(123456));
    }

    #[test]
    fn the_proxy_counts_both_directions() {
        let upstream = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = upstream.accept().unwrap();
            let mut request = [0_u8; 5];
            socket.read_exact(&mut request).unwrap();
            socket.write_all(&[7_u8; 100_000]).unwrap();
        });
        let proxy = ByteCountingProxy::start(upstream_port).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        client.write_all(b"hello").unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).unwrap();
        server.join().unwrap();
        assert_eq!(received.len(), 100_000);
        let counts = proxy.counts();
        assert_eq!(
            (counts.to_client, counts.to_upstream, counts.connections),
            (100_000, 5, 1)
        );
    }

    #[test]
    fn a_supervised_process_is_killed_on_drop() {
        let log = std::env::temp_dir().join(format!("scale-probe-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; exec sleep 30"]);
        let process = SupervisedProcess::spawn(command, &log).unwrap();
        let pid = process.pid();
        assert!(process_kib(pid, "VmRSS").is_ok());
        std::thread::sleep(Duration::from_millis(200));
        assert!(process.log().contains("started"));
        drop(process);
        // Reaped: the pid's status is gone (or, if reused, belongs to another program).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!status.contains("sleep"), "{status}");
        let _ = std::fs::remove_file(&log);
    }
}
