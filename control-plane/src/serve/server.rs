//! The running server: a sync thread that owns the [`Syncer`], an HTTP/1 server (hyper on a
//! tokio runtime of its own) whose requests are answered on blocking threads, and
//! [`RunningServer`] to drive and stop them in-process.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};

use super::config::ServeConfig;
use super::err::{ServeConfigError, ServeError};
use super::http::{route, Reply, RequestParts, SNAPSHOTS_PREFIX};
use super::log::{stderr_log, LogSink};
use super::long_poll::{LongPoll, PREFERENCE_APPLIED};
use super::state::Shared;
use super::sync::{Published, SyncReport, Syncer};
use crate::access::api as access_api;
use crate::access::{AccessService, AccessSettings, AccessSetupError, AccessStore, Authenticator};
use crate::snapshot::{load_signing_key, PublicKeySpec, TrustedKey};

/// Threads reading requests and writing replies, for every connection: a slow client costs
/// none of them while it is slow.
const HTTP_THREADS: usize = 2;
/// At most this many requests are answered at once (each on a thread, since routing blocks:
/// a `POST /v1/sync` waits for its sync); more wait for one of them to finish.
const ANSWER_THREADS: usize = 16;
/// How long the access threads wait for news before checking whether to stop.
const POLL: Duration = Duration::from_millis(100);
/// Until the first sync succeeds, a failed one is retried after at most this long.
const FIRST_SYNC_RETRY: Duration = Duration::from_secs(5);
/// How long `stop` waits for the listening port to be released.
const RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often expired grants are marked.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Starts snapshot servers; see [`Server::start`].
pub struct Server;

impl Server {
    /// Validates `config`, loads the signing key, listens, and starts syncing in the
    /// background (the first sync starts at once). Logs go to stderr.
    pub fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
        Server::start_with_log(config, stderr_log())
    }

    /// [`Server::start`] with log lines sent to `log`.
    pub fn start_with_log(config: ServeConfig, log: LogSink) -> Result<RunningServer, ServeError> {
        Server::start_with_access_store(config, log, None)
    }

    /// [`Server::start_with_log`] with the access API working on `store` instead of the one
    /// `access.store` names (tests, the end-to-end harness). Without `access:` it is unused.
    pub fn start_with_access_store(
        config: ServeConfig,
        log: LogSink,
        store: Option<Arc<dyn AccessStore>>,
    ) -> Result<RunningServer, ServeError> {
        config.validate()?;
        let key = load_signing_key(&config.signing_key_file).map_err(ServeError::Key)?;
        let syncer = Syncer::new(&config, key, Arc::clone(&log));
        let listen_error = |source: std::io::Error| ServeError::Listen {
            addr: config.listen,
            source: Box::new(source),
        };
        let listener = TcpListener::bind(config.listen).map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(HTTP_THREADS)
            .max_blocking_threads(ANSWER_THREADS)
            .thread_name("meshgate-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| ServeError::Spawn {
                name: "meshgate-http".to_owned(),
                source,
            })?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(listen_error)?
        };
        let shared = Arc::new(
            Shared::new(&config.snapshot_name)
                .with_views(config.views.iter().map(|view| view.name.clone())),
        );
        let access = match &config.access {
            None => None,
            Some(settings) => Some(Arc::new(
                start_access(settings, store, &shared, syncer.trusted_key(), &log).map_err(
                    |error| {
                        ServeConfigError::invalid(error.field(), super::log::error_chain(&error))
                    },
                )?,
            )),
        };
        // Approved access goes out with the snapshot: the syncer asks the store for the grants
        // in force at every sync. It also reads the annotations the policy's
        // `unless_annotation` conditions test.
        let syncer = match &access {
            Some(access) => {
                let keys = access.annotation_keys();
                let access = Arc::clone(access);
                syncer
                    .with_annotation_keys(keys)
                    .with_grants(Arc::new(move |now_ms| {
                        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
                        access
                            .active_grants_at(now_ms)
                            .map_err(|error| error.to_string())
                    }))
            }
            None => syncer,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, receiver) = mpsc::channel();
        let mut running = RunningServer {
            addr,
            shared: Arc::clone(&shared),
            commands,
            http: Some(runtime),
            stop: Arc::clone(&stop),
            workers: Vec::new(),
            sync_thread: None,
            trusted: syncer.trusted_key().clone(),
            log: Arc::clone(&log),
            access: access.clone(),
        };
        // Before any thread starts, so this is always the first line.
        log(&format!(
            "serving snapshot `{}` at {}{SNAPSHOTS_PREFIX}{}, resync every {} s",
            config.snapshot_name,
            running.url(),
            config.snapshot_name,
            config.resync_interval.as_secs()
        ));
        let sync_thread = {
            let shared = Arc::clone(&shared);
            let interval = config.resync_interval;
            let watch = config.watch_interval;
            spawn("meshgate-sync", move || {
                sync_loop(syncer, &shared, &receiver, interval, watch);
            })?
        };
        running.sync_thread = Some(sync_thread);
        let answerer = Arc::new(Answerer {
            shared: Arc::clone(&shared),
            commands: running.commands.clone(),
            access: access.clone(),
        });
        if let Some(runtime) = &running.http {
            runtime.spawn(accept_loop(
                listener,
                answerer,
                Arc::clone(&stop),
                Arc::clone(&log),
            ));
        }
        if let Some(access) = &access {
            // Each change of grants (approval, revocation, expiry) asks for a sync at once;
            // the sync loop coalesces a burst into one.
            let (changed, notices) = mpsc::channel();
            access.subscribe(changed);
            let commands = running.commands.clone();
            let stop = Arc::clone(&stop);
            let handle = spawn("meshgate-access-notices", move || {
                while !stop.load(Ordering::Acquire) {
                    match notices.recv_timeout(POLL) {
                        Ok(()) => {
                            let (reply, _) = mpsc::channel();
                            if commands
                                .send(Command::Sync {
                                    reply,
                                    force: false,
                                })
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
            running.workers.push(handle);
        }
        if let Some(access) = access {
            let stop = Arc::clone(&stop);
            let log = Arc::clone(&log);
            let handle = spawn("meshgate-access-expiry", move || {
                expiry_loop(&access, &stop, &log);
            })?;
            running.workers.push(handle);
        }
        Ok(running)
    }
}

/// Builds the access service from `access:`; `store` replaces the configured one.
fn start_access(
    settings: &AccessSettings,
    store: Option<Arc<dyn AccessStore>>,
    shared: &Arc<Shared>,
    trusted: &TrustedKey,
    log: &LogSink,
) -> Result<AccessService, AccessSetupError> {
    let policy = crate::access::load_policy(&settings.policy_file)?;
    let auth = Authenticator::new(&settings.auth)?;
    let store = match store {
        Some(store) => store,
        None => crate::access::open_store(&settings.store)?,
    };
    let current = {
        let shared = Arc::clone(shared);
        Arc::new(move || shared.current()) as crate::access::CurrentSnapshot
    };
    let notifier = match &settings.notify {
        Some(notify) => Some(crate::access::Notifier::start(
            notify.clone(),
            Arc::clone(log),
        )?),
        None => None,
    };
    Ok(AccessService::new(
        policy,
        store,
        auth,
        current,
        trusted.clone(),
        &settings.audit,
        crate::access::system_clock(),
    )?
    .with_notifier(notifier))
}

/// Every [`EXPIRY_TICK`], grants past `not_after` are marked expired (and audited). The
/// filter already stops honouring them by its own clock.
fn expiry_loop(access: &AccessService, stop: &AtomicBool, log: &LogSink) {
    let mut last_error = None;
    while !stop.load(Ordering::Acquire) {
        let next = Instant::now() + EXPIRY_TICK;
        match access.tick() {
            Ok(_) => last_error = None,
            Err(error) => {
                // Logged once per distinct error, not every second.
                let text = error.to_string();
                if last_error.as_ref() != Some(&text) {
                    log(&format!("access: cannot expire grants: {text}"));
                }
                last_error = Some(text);
            }
        }
        while !stop.load(Ordering::Acquire) && Instant::now() < next {
            std::thread::sleep(POLL);
        }
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ServeError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| ServeError::Spawn {
            name: name.to_owned(),
            source,
        })
}

enum Command {
    /// Sync now (past the guards when `force`) and send the report here.
    Sync {
        reply: Sender<SyncReport>,
        force: bool,
    },
    Stop,
}

/// After a watched change, the catalog must stay unchanged this long before a sync starts, so
/// a burst of writes (a git checkout, an editor's save) is read once. Every millisecond here
/// is a millisecond of a change's way to the edge; a burst that outlasts it costs one more
/// sync, not a wrong one (the guards still judge each read).
const QUIET: Duration = Duration::from_millis(100);
/// A catalog that keeps changing is synced after at most this long anyway.
const QUIET_CAP: Duration = Duration::from_secs(2);

/// Syncs at once, then every `interval`, whenever asked, and (for a directory catalog) when
/// the watch sees files change. Requests that arrive while a sync runs are all answered by
/// the next one, forced if any of them asked for force. A change that lands during a sync is
/// seen by the next watch poll and synced right after.
fn sync_loop(
    mut syncer: Syncer,
    shared: &Shared,
    commands: &Receiver<Command>,
    interval: Duration,
    watch: Option<Duration>,
) {
    let watch = watch.filter(|_| syncer.watches());
    let mut seen = None;
    let mut due = Instant::now();
    loop {
        let now = Instant::now();
        let wake = watch.map_or(due, |watch| due.min(now + watch));
        let mut waiting = Vec::new();
        let mut force = false;
        match commands.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Command::Sync {
                reply,
                force: asked,
            }) => {
                waiting.push(reply);
                force |= asked;
            }
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() < due {
                    let current = syncer.watch_fingerprint();
                    if current == seen {
                        continue;
                    }
                    if settle(&syncer, current, commands) {
                        return;
                    }
                }
            }
        }
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Sync {
                    reply,
                    force: asked,
                } => {
                    waiting.push(reply);
                    force |= asked;
                }
                Command::Stop => return,
            }
        }
        if watch.is_some() {
            // What this sync is about to read; anything newer is a change for the watch.
            seen = syncer.watch_fingerprint();
        }
        let report = syncer.run_with(force);
        shared.record(&report, syncer.current().cloned());
        for reply in waiting {
            // The asker may have given up; nothing to do then.
            let _ = reply.send(report.clone());
        }
        let wait = if syncer.current().is_some() {
            interval
        } else {
            interval.min(FIRST_SYNC_RETRY)
        };
        due = Instant::now() + wait;
    }
}

/// Waits until the catalog has not changed for [`QUIET`] (at most [`QUIET_CAP`]). True when
/// asked to stop meanwhile.
fn settle(
    syncer: &Syncer,
    mut current: Option<crate::catalog::DirFingerprint>,
    commands: &Receiver<Command>,
) -> bool {
    let deadline = Instant::now() + QUIET_CAP;
    loop {
        std::thread::sleep(QUIET);
        let again = syncer.watch_fingerprint();
        if again == current || Instant::now() >= deadline {
            return false;
        }
        current = again;
        if matches!(commands.try_recv(), Ok(Command::Stop)) {
            return true;
        }
    }
}

/// Accepts connections until the runtime is dropped, each served on a task of its own, so
/// no client waits for another to leave. A failed accept is retried after a pause.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    answerer: Arc<Answerer>,
    stop: Arc<AtomicBool>,
    log: LogSink,
) {
    let mut last_error: Option<String> = None;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                last_error = None;
                // Replies are written whole; do not hold their last segment back.
                let _ = stream.set_nodelay(true);
                let answerer = Arc::clone(&answerer);
                let service = hyper::service::service_fn(move |request| {
                    let answerer = Arc::clone(&answerer);
                    async move { Ok::<_, Infallible>(answerer.respond(request).await) }
                });
                tokio::spawn(async move {
                    // A client that leaves or breaks the protocol ends only its connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener still works, so serving goes on after a pause rather than ending
                // for every sidecar. Said once per kind of error, not per attempt.
                let text = error.to_string();
                if last_error.as_ref() != Some(&text) {
                    log(&format!(
                        "HTTP accept failed, retrying every {ACCEPT_RETRY:?}: {text}"
                    ));
                    last_error = Some(text);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Pause after a failed accept before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What answering a request needs; shared by every connection.
struct Answerer {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    access: Option<Arc<AccessService>>,
}

/// A request as routing reads it, off the connection.
struct Received {
    method: String,
    /// Path and query.
    url: String,
    if_none_match: Option<String>,
    a_im: Option<String>,
    authorization: Option<String>,
    /// Read for the access API only; `None` when over [`access_api::MAX_BODY_BYTES`].
    body: Option<Vec<u8>>,
}

impl Answerer {
    /// Reads the request, answers it on a blocking thread and turns the [`Reply`] into a
    /// response.
    async fn respond(self: Arc<Self>, request: Request<Incoming>) -> Response<ReplyBody> {
        let (head, body) = request.into_parts();
        let header = |name: &str| {
            head.headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let url = head
            .uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned();
        let body = if url.starts_with(access_api::PREFIX) {
            read_body(body).await
        } else {
            None
        };
        let received = Received {
            method: head.method.as_str().to_owned(),
            url,
            if_none_match: header("if-none-match"),
            a_im: header("a-im"),
            authorization: header("authorization"),
            body,
        };
        let long_poll = LongPoll::of(
            &received.method,
            &received.url,
            received.if_none_match.as_deref(),
            header("prefer").as_deref(),
        );
        if let Some(poll) = &long_poll {
            // On the connection's task: a held poll costs no thread.
            self.shared.hold(poll).await;
        }
        let answerer = Arc::clone(&self);
        let mut reply = tokio::task::spawn_blocking(move || answerer.answer(&received))
            .await
            .unwrap_or_else(|_| {
                Reply::json(
                    500,
                    &serde_json::json!({"code": "internal", "message": "the request could not be answered"}),
                )
            });
        if let Some(poll) = long_poll.filter(|_| matches!(reply.status, 200 | 226 | 304)) {
            reply = reply.header(PREFERENCE_APPLIED, poll.applied());
        }
        into_response(reply, head.method == Method::HEAD)
    }

    /// Today's routing, unchanged: the access API, the admin check on `POST /v1/sync`, and
    /// [`route`] for the rest.
    fn answer(&self, request: &Received) -> Reply {
        let access = self.access.as_deref();
        let sync = |force| request_sync(&self.commands, force);
        let method = request.method.as_str();
        let url = request.url.as_str();
        let authorization = request.authorization.as_deref();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if path.starts_with(access_api::PREFIX) {
            let (status, json) = access_api::handle(
                access,
                &access_api::ApiRequest {
                    method,
                    path,
                    query,
                    authorization,
                    body: request.body.as_deref(),
                },
            );
            return Reply::json(status, &json);
        }
        // With the access API configured, a sync is an administrative act.
        let refused = match (access, path, method) {
            (Some(access), "/v1/sync", "POST") => access.require_admin(authorization).err(),
            _ => None,
        };
        match refused {
            Some(error) => Reply::json(error.status(), &error.body()),
            None => route(
                &self.shared,
                &RequestParts {
                    method,
                    url,
                    if_none_match: request.if_none_match.as_deref(),
                    a_im: request.a_im.as_deref(),
                },
                &sync,
            ),
        }
    }
}

fn request_sync(commands: &Sender<Command>, force: bool) -> Option<SyncReport> {
    let (reply, report) = mpsc::channel();
    commands.send(Command::Sync { reply, force }).ok()?;
    report.recv().ok()
}

/// The body, at most [`access_api::MAX_BODY_BYTES`]; `None` when longer (or unreadable). A
/// body announced as longer is not read at all.
async fn read_body(body: Incoming) -> Option<Vec<u8>> {
    let limit = access_api::MAX_BODY_BYTES;
    if body.size_hint().lower() > limit as u64 {
        return None;
    }
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .ok()?;
    Some(collected.to_bytes().to_vec())
}

/// `reply` as a response. A HEAD or a 304 sends no body but announces the `Content-Length`
/// a GET would have had ([`Reply::length`]).
fn into_response(reply: Reply, head: bool) -> Response<ReplyBody> {
    let bodiless = head || reply.status == 304;
    let length = if bodiless {
        reply.length
    } else {
        reply.body.len()
    };
    let mut response = Response::new(ReplyBody {
        data: Bytes::from_owner(reply.body),
        length: u64::try_from(length).unwrap_or(u64::MAX),
    });
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// A reply's body, announcing `length` bytes. hyper sends none after HEAD or with a 304, so
/// there the announced length may be the GET's; otherwise it is the data's.
struct ReplyBody {
    data: Bytes,
    /// Zero once the data is handed over.
    length: u64,
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let body = self.get_mut();
        body.length = 0;
        let data = std::mem::take(&mut body.data);
        Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.length == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

/// A server started by [`Server::start`]. Stops when [`RunningServer::stop`] is called or when
/// dropped.
pub struct RunningServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    commands: Sender<Command>,
    /// The HTTP server's runtime; `None` once stopped.
    http: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    sync_thread: Option<JoinHandle<()>>,
    trusted: TrustedKey,
    log: LogSink,
    access: Option<Arc<AccessService>>,
}

impl RunningServer {
    /// The access service, when `access:` is configured: its active grants and their
    /// change notifications are what the snapshot needs.
    pub fn access(&self) -> Option<Arc<AccessService>> {
        self.access.clone()
    }

    /// The port listened on (the one picked when `listen` said port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>:<port>`, with loopback in place of an unspecified address.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// `/v1/snapshots/<name>`, the path a filter polls.
    pub fn snapshot_path(&self) -> String {
        format!("{SNAPSHOTS_PREFIX}{}", self.shared.name())
    }

    /// [`RunningServer::url`] followed by [`RunningServer::snapshot_path`].
    pub fn snapshot_url(&self) -> String {
        format!("{}{}", self.url(), self.snapshot_path())
    }

    /// The public key snapshots are signed with, as the filter trusts it.
    pub fn trusted_key(&self) -> TrustedKey {
        self.trusted.clone()
    }

    /// The public key as the filter configuration lists it (`{"kid", "public_key"}`).
    pub fn public_key(&self) -> PublicKeySpec {
        self.trusted.to_spec()
    }

    /// Runs a sync now (after any sync already running) and returns its report. `None` when
    /// the server is stopped.
    pub fn trigger_sync(&self) -> Option<SyncReport> {
        request_sync(&self.commands, false)
    }

    /// [`RunningServer::trigger_sync`] past the publish guards (`POST /v1/sync?force=true`).
    pub fn trigger_forced_sync(&self) -> Option<SyncReport> {
        request_sync(&self.commands, true)
    }

    /// The version served now; `None` before the first successful sync.
    pub fn current_version(&self) -> Option<u64> {
        self.shared.current().map(|current| current.version)
    }

    /// The snapshot served now.
    pub fn current(&self) -> Option<Arc<Published>> {
        self.shared.current()
    }

    /// Waits until a snapshot is served, at most `timeout`; true when one is.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.shared.wait_ready(timeout)
    }

    /// False once stopped.
    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::Acquire)
    }

    /// Stops answering, joins every thread (a sync under way is finished first) and waits
    /// until the port can be bound again. Calling it again does nothing.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(http) = self.http.take() else {
            return;
        };
        // Drops the listener and every connection, after the requests being answered (a
        // `POST /v1/sync` waits for its sync; the sync thread is still there to run it).
        drop(http);
        for worker in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = worker.join();
        }
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.sync_thread.take() {
            let _ = thread.join();
        }
        if !wait_released(self.addr) {
            (self.log)(&format!(
                "port {} still in use {} s after stopping",
                self.addr.port(),
                RELEASE_WAIT.as_secs()
            ));
        }
        (self.log)("stopped");
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the address can be bound again (it was closed with the runtime; this checks
/// that nothing else still holds it).
fn wait_released(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        if TcpListener::bind(addr).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
