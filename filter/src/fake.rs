//! A host that records outcomes, for testing the glue natively.

use std::cell::RefCell;
use std::collections::HashMap;

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
}

#[derive(Debug, Default)]
pub struct FakeHost {
    pub now_ms: i64,
    pub headers: Vec<(String, String)>,
    pub reply: Option<SentReply>,
    pub counters: HashMap<String, u64>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub dispatched: Vec<Dispatched>,
    pub fail_dispatch: bool,
    next_token: u32,
}

impl FakeHost {
    pub fn at(now_unix: i64) -> FakeHost {
        FakeHost {
            now_ms: now_unix * 1000,
            ..FakeHost::default()
        }
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

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn increment(&mut self, metric: Metric) {
        *self.counters.entry(metric.name()).or_default() += 1;
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
        });
        Ok(self.next_token)
    }
}
