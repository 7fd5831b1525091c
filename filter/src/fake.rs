//! A host that records outcomes, for testing the glue natively. Several `FakeHost`s can
//! share one `SharedData`, as Envoy's worker VMs share theirs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::host::{Callout, Host, HostError, LogLevel, Metric};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub token: u32,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// One request's state: what the filter saw and did to it.
#[derive(Debug, Clone, Default)]
pub struct FakeRequest {
    pub headers: Vec<(String, String)>,
    pub reply: Option<SentReply>,
    pub resumed: bool,
}

/// Envoy shared data: values with versions for compare-and-swap.
pub type SharedData = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

#[derive(Debug, Default)]
pub struct FakeHost {
    pub now_ms: i64,
    /// The effective request context.
    pub context: u32,
    pub headers: Vec<(String, String)>,
    pub reply: Option<SentReply>,
    pub resumed: bool,
    /// Other requests, by context id.
    pub parked: HashMap<u32, FakeRequest>,
    pub counters: HashMap<String, u64>,
    pub gauges: HashMap<String, u64>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub dispatched: Vec<Dispatched>,
    pub fail_dispatch: bool,
    pub shared: SharedData,
    pub filter_state: HashMap<String, String>,
    next_token: u32,
}

impl FakeHost {
    pub fn at(now_unix: i64) -> FakeHost {
        FakeHost {
            now_ms: now_unix * 1000,
            context: 1,
            ..FakeHost::default()
        }
    }

    pub fn sharing(mut self, shared: &SharedData) -> FakeHost {
        self.shared = Rc::clone(shared);
        self
    }

    pub fn with_request(mut self, method: &str, authority: &str, path: &str) -> FakeHost {
        self.headers.push((":method".into(), method.into()));
        self.headers.push((":authority".into(), authority.into()));
        self.headers.push((":path".into(), path.into()));
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> FakeHost {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Starts another request as context `id` (the current one is parked).
    pub fn new_request(&mut self, id: u32, headers: Vec<(String, String)>) {
        self.park();
        self.context = id;
        self.headers = headers;
    }

    /// The state of request `id`, wherever it is.
    pub fn request(&self, id: u32) -> FakeRequest {
        if id == self.context {
            FakeRequest {
                headers: self.headers.clone(),
                reply: self.reply.clone(),
                resumed: self.resumed,
            }
        } else {
            self.parked.get(&id).cloned().unwrap_or_default()
        }
    }

    fn park(&mut self) {
        let current = FakeRequest {
            headers: std::mem::take(&mut self.headers),
            reply: self.reply.take(),
            resumed: std::mem::take(&mut self.resumed),
        };
        self.parked.insert(self.context, current);
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.borrow().iter().any(|(_, m)| m.contains(needle))
    }
}

impl Host for FakeHost {
    fn now_unix(&self) -> i64 {
        self.now_ms / 1000
    }

    fn now_millis(&self) -> i64 {
        self.now_ms
    }

    fn now_micros(&self) -> i64 {
        self.now_ms * 1000
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn increment(&mut self, metric: Metric) {
        *self.counters.entry(metric.name()).or_default() += 1;
    }

    fn set_gauge(&mut self, metric: Metric, value: u64) {
        self.gauges.insert(metric.name(), value);
    }

    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError> {
        Ok(self.headers.clone())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.headers.retain(|(k, _)| k != name);
        Ok(())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        assert!(self.reply.is_none(), "two local replies for one request");
        assert!(!self.resumed, "local reply after resume");
        self.reply = Some(SentReply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
        Ok(())
    }

    fn dispatch_get(&mut self, callout: &Callout<'_>) -> Result<u32, HostError> {
        if self.fail_dispatch {
            return Err(HostError {
                operation: "dispatch_http_call",
                status: "BadArgument".into(),
            });
        }
        self.next_token += 1;
        self.dispatched.push(Dispatched {
            token: self.next_token,
            cluster: callout.cluster.to_owned(),
            authority: callout.authority.to_owned(),
            path: callout.path.to_owned(),
            headers: callout
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        Ok(self.next_token)
    }

    fn set_effective_context(&mut self, context_id: u32) -> Result<(), HostError> {
        if context_id == self.context {
            return Ok(());
        }
        let Some(next) = self.parked.remove(&context_id) else {
            return Err(HostError {
                operation: "set_effective_context",
                status: "NotFound".into(),
            });
        };
        self.park();
        self.context = context_id;
        self.headers = next.headers;
        self.reply = next.reply;
        self.resumed = next.resumed;
        Ok(())
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.filter_state
            .insert(key.to_owned(), String::from_utf8_lossy(value).into_owned());
        Ok(())
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        assert!(self.reply.is_none(), "resume after a local reply");
        self.resumed = true;
        Ok(())
    }

    fn get_shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        Ok(match self.shared.borrow().get(key) {
            Some((value, version)) => (Some(value.clone()), Some(*version)),
            None => (None, None),
        })
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, HostError> {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, v)| *v);
        if let (Some(cas), Some(current)) = (cas, current) {
            if cas != current {
                return Ok(false);
            }
        }
        let version = current.map_or(1, |v| v + 1);
        shared.insert(key.to_owned(), (value.to_vec(), version));
        Ok(true)
    }
}
