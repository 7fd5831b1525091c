//! A host that records outcomes, for testing the glue natively. Several `FakeHost`s can
//! share one `SharedData`, as Envoy's worker VMs share theirs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::host::{Callout, Host, HostError, HostStatus, LogLevel, Metric};

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
    pub timeout: std::time::Duration,
}

/// One request's state: what the filter saw and did to it.
#[derive(Debug, Clone, Default)]
pub struct FakeRequest {
    pub headers: Vec<(String, String)>,
    pub reply: Option<SentReply>,
    pub resumed: bool,
}

/// How the fake answers `verify_signature`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForeignFake {
    /// Not registered (`NotFound`), as in hosts without the function.
    #[default]
    Absent,
    /// Verifies for real, as Envoy does: parses the arguments, the DER public key (with
    /// the `rsa` crate, or as a SEC1 point) and the DER ECDSA signature.
    Verify,
    /// Always this result.
    Answer(bool),
    /// The call fails (`InternalFailure`).
    Fail,
    /// Answers bytes that are not a `VerifySignatureResult`.
    Garbage,
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
    pub foreign: ForeignFake,
    /// `verify_signature` calls made, whatever the answer.
    pub foreign_calls: Cell<u32>,
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

    pub fn with_foreign(mut self, foreign: ForeignFake) -> FakeHost {
        self.foreign = foreign;
        self
    }
}

/// The fields of a `VerifySignatureArguments` message, decoded independently of the
/// encoder under test.
#[derive(Debug, Default)]
pub struct VerifyArguments {
    pub hash_function: String,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
    pub text: Vec<u8>,
}

impl VerifyArguments {
    pub fn decode(mut bytes: &[u8]) -> VerifyArguments {
        fn varint(bytes: &mut &[u8]) -> usize {
            let mut value = 0usize;
            let mut shift = 0;
            loop {
                let byte = bytes[0];
                *bytes = &bytes[1..];
                value |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    return value;
                }
            }
        }
        let mut args = VerifyArguments::default();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            assert_eq!(key & 7, 2, "every argument field is length-delimited");
            let len = varint(&mut bytes);
            let value = bytes[..len].to_vec();
            bytes = &bytes[len..];
            match key >> 3 {
                1 => args.hash_function = String::from_utf8(value).unwrap(),
                2 => args.public_key = value,
                3 => args.signature = value,
                4 => args.text = value,
                other => panic!("unexpected field {other}"),
            }
        }
        args
    }

    /// What Envoy's BoringSSL would say.
    pub fn verify(&self) -> bool {
        use jwt_compact::alg::{Es256, Rsa, RsaPublicKey};
        use jwt_compact::{Algorithm, AlgorithmSignature};
        use rsa::pkcs8::DecodePublicKey;

        if let Ok(key) = RsaPublicKey::from_public_key_der(&self.public_key) {
            let alg = match self.hash_function.as_str() {
                "sha256" => Rsa::rs256(),
                "sha384" => Rsa::rs384(),
                "sha512" => Rsa::rs512(),
                _ => return false,
            };
            return <Rsa as Algorithm>::Signature::try_from_slice(&self.signature)
                .is_ok_and(|sig| alg.verify_signature(&sig, &key, &self.text));
        }
        if let Some(valid) = self.verify_p384_p521() {
            return valid;
        }
        // id-ecPublicKey + prime256v1, then the uncompressed point.
        const P256_SPKI_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let Some(point) = self.public_key.strip_prefix(&P256_SPKI_PREFIX[..]) else {
            return false;
        };
        let key = <Es256 as Algorithm>::VerifyingKey::from_sec1_bytes(point).unwrap();
        self.hash_function == "sha256"
            && <Es256 as Algorithm>::Signature::from_der(&self.signature)
                .is_ok_and(|sig| Es256.verify_signature(&sig, &key, &self.text))
    }
}

impl VerifyArguments {
    /// P-384 (secp384r1) and P-521 (secp521r1) keys, by their SPKI prefix as OpenSSL writes
    /// it; `None` for other keys.
    fn verify_p384_p521(&self) -> Option<bool> {
        use p384::ecdsa::signature::Verifier as _;
        const P384_SPKI_PREFIX: [u8; 23] = [
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
        ];
        const P521_SPKI_PREFIX: [u8; 25] = [
            0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
            0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
        ];
        if let Some(point) = self.public_key.strip_prefix(&P384_SPKI_PREFIX[..]) {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            return Some(
                self.hash_function == "sha384"
                    && p384::ecdsa::Signature::from_der(&self.signature)
                        .is_ok_and(|sig| key.verify(&self.text, &sig).is_ok()),
            );
        }
        let point = self.public_key.strip_prefix(&P521_SPKI_PREFIX[..])?;
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
        Some(
            self.hash_function == "sha512"
                && p521::ecdsa::Signature::from_der(&self.signature)
                    .is_ok_and(|sig| key.verify(&self.text, &sig).is_ok()),
        )
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
                status: HostStatus::BadArgument,
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
            timeout: callout.timeout,
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
                status: HostStatus::NotFound,
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

    fn call_foreign_function(
        &self,
        name: &'static str,
        argument: &[u8],
    ) -> Result<Option<Vec<u8>>, HostError> {
        let failed = |status: HostStatus| HostError {
            operation: name,
            status,
        };
        if name != "verify_signature" || self.foreign == ForeignFake::Absent {
            return Err(failed(HostStatus::NotFound));
        }
        self.foreign_calls.set(self.foreign_calls.get() + 1);
        let args = VerifyArguments::decode(argument);
        let answer = |valid: bool| {
            Ok(Some(if valid {
                vec![0x08, 0x01]
            } else {
                b"\x12\x06failed".to_vec()
            }))
        };
        match self.foreign {
            ForeignFake::Absent => Err(failed(HostStatus::NotFound)),
            ForeignFake::Verify => answer(args.verify()),
            ForeignFake::Answer(valid) => answer(valid),
            ForeignFake::Fail => Err(failed(HostStatus::InternalFailure)),
            ForeignFake::Garbage => Ok(Some(vec![0x08])),
        }
    }
}
