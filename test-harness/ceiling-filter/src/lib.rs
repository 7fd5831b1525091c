//! The Wasm-boundary ceiling: a proxy-wasm HTTP filter that does the least a real
//! authorization filter must do (cross into the VM, read the `authorization` header)
//! and nothing else. Benchmarks compare meshgate against it to separate the cost of
//! running any Wasm filter from the cost of meshgate's own logic.
//!
//! Plugin configuration (optional, checked once in `on_configure`, never per request):
//! - empty or anything else: accept.
//! - a string containing `reject`: `on_configure` returns false, so tests can observe
//!   how Envoy treats a filter that refuses its configuration.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

/// Counter defined at configure time, so tests can see how Envoy names filter metrics.
/// Deliberately not touched per request: the ceiling must stay minimal.
const CONFIGURED_COUNTER: &str = "meshgate_ceiling.configured";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CeilingRoot) });
}}

struct CeilingRoot;

impl Context for CeilingRoot {}

impl RootContext for CeilingRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("meshgate-ceiling {} vm started", env!("CARGO_PKG_VERSION"));
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error!("meshgate-ceiling: cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        if String::from_utf8_lossy(&config).contains("reject") {
            log::error!("meshgate-ceiling: configuration rejected on request");
            return false;
        }
        match hostcalls::define_metric(MetricType::Counter, CONFIGURED_COUNTER) {
            Ok(id) => {
                if let Err(status) = hostcalls::increment_metric(id, 1) {
                    log::warn!("meshgate-ceiling: cannot increment metric: {status:?}");
                }
            }
            Err(status) => log::warn!("meshgate-ceiling: cannot define metric: {status:?}"),
        }
        log::info!("meshgate-ceiling configured");
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CeilingRequest))
    }
}

struct CeilingRequest;

impl Context for CeilingRequest {}

impl HttpContext for CeilingRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The value is read and dropped: the point is paying for the hostcall and the
        // copy into the VM, as any header-based authorization filter must.
        let _authorization = hostcalls::get_map_value(MapType::HttpRequestHeaders, "authorization");
        Action::Continue
    }
}
