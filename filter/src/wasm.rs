//! The proxy-wasm side: contexts and the real `Host` over `proxy_wasm::hostcalls`.
//! Only compiled for wasm32; everything it calls is tested natively over `FakeHost`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType, Status};

use meshgate_core::Policy;

use crate::filter::{Filter, Next};
use crate::host::{CallResponse, Callout, Host, HostError, HostStatus, LogLevel, Metric};
use crate::signatures::{self, Verifier};

const TICK: Duration = Duration::from_millis(500);

proxy_wasm::main! {{
    // First, so a panic anywhere after this is logged before the VM dies.
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(proxy_wasm::types::LogLevel::Critical, &format!("meshgate panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

/// Metric ids are per VM; define each once.
#[derive(Default)]
struct Metrics {
    ids: HashMap<Metric, u32>,
}

impl Metrics {
    fn id(&mut self, metric: Metric, kind: MetricType) -> Option<u32> {
        if let Some(id) = self.ids.get(&metric) {
            return Some(*id);
        }
        let name = metric.name();
        let id = hostcalls::define_metric(kind, &name).ok()?;
        self.ids.insert(metric, id);
        Some(id)
    }

    fn increment(&mut self, metric: Metric) {
        if let Some(id) = self.id(metric, MetricType::Counter) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn set_gauge(&mut self, metric: Metric, value: u64) {
        if let Some(id) = self.id(metric, MetricType::Gauge) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// The real host. Stateless apart from metric ids, shared by root and HTTP contexts.
#[derive(Clone, Default)]
struct EnvoyHost {
    metrics: Rc<RefCell<Metrics>>,
}

fn host_error(operation: &'static str) -> impl Fn(Status) -> HostError {
    move |status| HostError {
        operation,
        status: host_status(status),
    }
}

fn host_status(status: Status) -> HostStatus {
    match status {
        Status::NotFound => HostStatus::NotFound,
        Status::BadArgument => HostStatus::BadArgument,
        Status::SerializationFailure => HostStatus::SerializationFailure,
        Status::ParseFailure => HostStatus::ParseFailure,
        Status::Empty => HostStatus::Empty,
        Status::CasMismatch => HostStatus::CasMismatch,
        Status::InternalFailure => HostStatus::InternalFailure,
        other => HostStatus::Other(other as u32),
    }
}

impl Host for EnvoyHost {
    fn now_unix(&self) -> i64 {
        self.now_millis() / 1000
    }

    fn now_millis(&self) -> i64 {
        self.now_micros() / 1000
    }

    fn now_micros(&self) -> i64 {
        // Envoy reads the system clock for this call (not a per-event-loop cached time), so
        // two reads around a decision time it.
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_micros()).ok())
            .unwrap_or(0)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
            LogLevel::Info => proxy_wasm::types::LogLevel::Info,
            LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
            LogLevel::Error => proxy_wasm::types::LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }

    fn increment(&mut self, metric: Metric) {
        self.metrics.borrow_mut().increment(metric);
    }

    fn set_gauge(&mut self, metric: Metric, value: u64) {
        self.metrics.borrow_mut().set_gauge(metric, value);
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        hostcalls::get_map(MapType::HttpRequestHeaders).map_err(host_error("get request headers"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None)
            .map_err(host_error("remove request header"))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            .map_err(host_error("set request header"))
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body))
            .map_err(host_error("send local reply"))
    }

    fn dispatch_get(&mut self, callout: &Callout<'_>) -> Result<u32, HostError> {
        let mut headers = vec![
            (":method", "GET"),
            (":path", callout.path),
            (":authority", callout.authority),
        ];
        headers.extend_from_slice(callout.headers);
        hostcalls::dispatch_http_call(callout.cluster, headers, None, vec![], callout.timeout)
            .map_err(host_error("dispatch_http_call"))
    }

    fn set_effective_context(&mut self, context_id: u32) -> Result<(), HostError> {
        hostcalls::set_effective_context(context_id).map_err(host_error("set_effective_context"))
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(vec![key], Some(value)).map_err(host_error("set_property"))
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        hostcalls::resume_http_request().map_err(host_error("resume_http_request"))
    }

    fn get_shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        hostcalls::get_shared_data(key).map_err(host_error("get_shared_data"))
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, HostError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(proxy_wasm::types::Status::CasMismatch) => Ok(false),
            Err(status) => Err(host_error("set_shared_data")(status)),
        }
    }

    fn call_foreign_function(
        &self,
        name: &'static str,
        argument: &[u8],
    ) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::call_foreign_function(name, Some(argument)).map_err(host_error(name))
    }
}

/// A callout's status, `etag` and body, read in whichever context receives it.
struct OwnedResponse {
    status: Option<u16>,
    etag: Option<String>,
    held: bool,
    body: Option<Vec<u8>>,
}

impl OwnedResponse {
    fn read(body_size: usize) -> OwnedResponse {
        let header = |name: &str| {
            hostcalls::get_map_value(MapType::HttpCallResponseHeaders, name)
                .ok()
                .flatten()
        };
        OwnedResponse {
            status: header(":status").and_then(|s| s.parse::<u16>().ok()),
            etag: header("etag"),
            held: header("preference-applied").is_some_and(|applied| {
                applied
                    .split(',')
                    .any(|p| p.trim().to_ascii_lowercase().starts_with("wait"))
            }),
            body: hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten(),
        }
    }

    fn view(&self) -> CallResponse<'_> {
        CallResponse {
            status: self.status,
            body: self.body.as_deref(),
            etag: self.etag.as_deref(),
            held: self.held,
        }
    }
}

#[derive(Default)]
struct Root {
    host: EnvoyHost,
    filter: Option<Rc<RefCell<Filter>>>,
    /// Found at VM start, kept across reconfigurations.
    verifier: Verifier,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(filter) = &self.filter else { return };
        let response = OwnedResponse::read(body_size);
        if let Ok(mut filter) = filter.try_borrow_mut() {
            filter.on_http_call_response(&mut self.host, token_id, &response.view());
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.host.log(
            LogLevel::Info,
            &format!(
                "meshgate {} ({}) started",
                env!("CARGO_PKG_VERSION"),
                env!("MESHGATE_GIT_SHA")
            ),
        );
        self.verifier = signatures::detect(&self.host);
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(raw)) => raw,
            Ok(None) => Vec::new(),
            Err(e) => {
                self.host.log(
                    LogLevel::Error,
                    &format!(
                        "meshgate: configuration rejected: cannot read plugin configuration: {e:?}"
                    ),
                );
                return false;
            }
        };
        match Policy::from_json(&raw) {
            Ok(policy) => {
                if !signatures::ready(&self.host, self.verifier, &policy) {
                    return false;
                }
                crate::jwks_refresh::report_local_skips(&mut self.host, &policy);
                let mut filter = Filter::new(policy);
                filter.verifier = self.verifier;
                let remote = !filter.jwks.is_empty() || filter.snapshot.is_some();
                self.host.log(
                    LogLevel::Info,
                    &format!(
                        "meshgate: configuration accepted: {} providers, {} rules",
                        filter.policy.providers.len(),
                        filter.policy.rules.len()
                    ),
                );
                self.filter = Some(Rc::new(RefCell::new(filter)));
                if remote {
                    let _ = hostcalls::set_tick_period(TICK);
                }
                true
            }
            Err(e) => {
                // One line naming the field; the previous configuration (if any) stays.
                self.host.log(
                    LogLevel::Error,
                    &format!("meshgate: configuration rejected: {e}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(Ok(mut filter)) = self.filter.as_ref().map(|f| f.try_borrow_mut()) {
            filter.on_tick(&mut self.host);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        self.filter.as_ref().map(|filter| {
            Box::new(Http {
                context_id,
                host: self.host.clone(),
                filter: Rc::clone(filter),
            }) as Box<dyn HttpContext>
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    context_id: u32,
    host: EnvoyHost,
    filter: Rc<RefCell<Filter>>,
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let response = OwnedResponse::read(body_size);
        if let Ok(mut filter) = self.filter.try_borrow_mut() {
            filter.on_http_call_response(&mut self.host, token_id, &response.view());
        }
    }

    fn on_done(&mut self) -> bool {
        // Envoy may end a stream synchronously while the filter answers it from another
        // context's callback (the filter is then borrowed): that request is no longer
        // waiting anyway, so nothing is lost by skipping.
        if let Ok(mut filter) = self.filter.try_borrow_mut() {
            filter.forget(self.context_id);
        }
        true
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Ok(mut filter) = self.filter.try_borrow_mut() else {
            // Re-entered while the filter is busy: never a reason to let a request through.
            let _ = self.host.send_local_reply(503, &[], b"");
            return Action::Pause;
        };
        match filter.on_request_headers(&mut self.host, self.context_id) {
            Next::Continue => Action::Continue,
            Next::Stop | Next::Pause => Action::Pause,
        }
    }
}
