//! TLS for the catalog client: the public roots ureq's `tls` feature trusts (webpki-roots),
//! plus an optional private CA bundle (`catalog.backstage.ca_file`).
//!
//! The bundle is read strictly, once, when the configuration is loaded: a file that cannot be
//! read, is empty, is not PEM, is cut short, holds anything but `CERTIFICATE` blocks, or holds
//! a certificate rustls cannot use as a trust anchor is refused with the reason. Text outside
//! the blocks (comments, as in distribution bundles) is ignored.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject as _, SectionKind};
use rustls::pki_types::{CertificateDer, TrustAnchor};
use rustls::{ClientConfig, RootCertStore};

/// The most bytes read from a CA file (a distribution's whole bundle is about 200 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// The certificates of a private CA bundle, as trust anchors, with the file they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    anchors: Vec<TrustAnchor<'static>>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.anchors.len())
            .finish()
    }
}

/// Why a CA file is refused. The message names the file; the field is named by the caller.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is larger than {max} bytes", .path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("`{}` is empty", .path.display())]
    Empty { path: PathBuf },
    /// A block that cannot be decoded. `block` counts from 1 the blocks of known types
    /// (others are skipped, like text between blocks).
    #[error("block {block} of `{}` {problem}", .path.display())]
    Pem {
        path: PathBuf,
        block: usize,
        problem: PemProblem,
    },
    /// No `CERTIFICATE` block: not PEM at all (DER, say), or only blocks of unknown types.
    #[error("`{}` holds no PEM `CERTIFICATE` block", .path.display())]
    NoCertificate { path: PathBuf },
    /// A known block that is not a certificate (a private key, most likely the wrong file).
    #[error("block {block} of `{}` is a `{label}`, not a `CERTIFICATE`; a CA bundle holds certificates only", .path.display())]
    NotCertificate {
        path: PathBuf,
        block: usize,
        label: &'static str,
    },
    /// The block decodes, but its content is not a certificate rustls can trust.
    #[error("certificate {block} of `{}` is not a usable CA certificate", .path.display())]
    BadCertificate {
        path: PathBuf,
        block: usize,
        source: rustls::Error,
    },
}

/// What is wrong inside one PEM block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemProblem {
    /// No `-----END …-----` line: the file was cut short.
    MissingEnd,
    /// A `-----BEGIN` line that is not well formed.
    BadBegin,
    /// The body is not base64.
    BadBase64,
    /// Any other decoding failure.
    Unreadable,
}

impl std::fmt::Display for PemProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PemProblem::MissingEnd => "has no `-----END` line (is the file truncated?)",
            PemProblem::BadBegin => "has a malformed `-----BEGIN` line",
            PemProblem::BadBase64 => "is not valid base64",
            PemProblem::Unreadable => "cannot be decoded",
        })
    }
}

impl PemProblem {
    fn of(error: &pem::Error) -> PemProblem {
        match error {
            pem::Error::MissingSectionEnd { .. } => PemProblem::MissingEnd,
            pem::Error::IllegalSectionStart { .. } => PemProblem::BadBegin,
            pem::Error::Base64Decode(_) => PemProblem::BadBase64,
            _ => PemProblem::Unreadable,
        }
    }
}

impl CaBundle {
    /// Reads a PEM bundle of one or more CA certificates.
    pub fn read(path: impl Into<PathBuf>) -> Result<CaBundle, CaFileError> {
        let path = path.into();
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path).and_then(|file| {
            file.take(MAX_CA_FILE_BYTES.saturating_add(1))
                .read_to_end(&mut bytes)
        });
        if let Err(source) = read {
            return Err(CaFileError::Read { path, source });
        }
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CA_FILE_BYTES {
            return Err(CaFileError::TooLarge {
                path,
                max: MAX_CA_FILE_BYTES,
            });
        }
        CaBundle::from_pem(path, &bytes)
    }

    /// Parses PEM text as [`CaBundle::read`] does; `path` only names it in errors.
    pub fn from_pem(path: impl Into<PathBuf>, text: &[u8]) -> Result<CaBundle, CaFileError> {
        let path = path.into();
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err(CaFileError::Empty { path });
        }
        let mut roots = RootCertStore::empty();
        let mut blocks = 0_usize;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text) {
            blocks = blocks.saturating_add(1);
            let (kind, der) = section.map_err(|error| CaFileError::Pem {
                path: path.clone(),
                block: blocks,
                problem: PemProblem::of(&error),
            })?;
            if kind != SectionKind::Certificate {
                return Err(CaFileError::NotCertificate {
                    path,
                    block: blocks,
                    label: label(kind),
                });
            }
            roots
                .add(CertificateDer::from(der))
                .map_err(|source| CaFileError::BadCertificate {
                    path: path.clone(),
                    block: blocks,
                    source,
                })?;
        }
        if roots.is_empty() {
            return Err(CaFileError::NoCertificate { path });
        }
        Ok(CaBundle {
            path,
            anchors: roots.roots,
        })
    }

    /// The file the bundle was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates the bundle holds (at least 1).
    pub fn certificates(&self) -> usize {
        self.anchors.len()
    }
}

/// The PEM label of a known block kind.
fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "non-certificate block",
    }
}

/// The catalog client's TLS settings: ring as the crypto provider, TLS 1.2 and 1.3, the
/// webpki roots and the certificates of `extra`.
pub fn client_config(extra: Option<&CaBundle>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(bundle) = extra {
        roots.roots.extend(bundle.anchors.iter().cloned());
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A self-signed CA certificate, PEM, for tests.
#[cfg(test)]
pub(crate) fn test_ca_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        test_ca_pem(name)
    }

    fn key_pem() -> String {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    }

    #[test]
    fn reads_certificates_and_refuses_everything_else() {
        let one = ca_pem("meshgate test CA one");
        let two = ca_pem("meshgate test CA two");
        let key = key_pem();
        let truncated = one[..one.len() / 2].to_owned();
        let body_of = |pem: &str| {
            pem.lines()
                .filter(|line| !line.starts_with("-----"))
                .collect::<String>()
        };
        let not_der = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
        );
        let bad_base64 = one.replacen(&body_of(&one)[..8], "!!!!!!!!", 1);
        // Expected: Ok(certificates) or Err(part of the message).
        let cases: Vec<(&str, String, Result<usize, &str>)> = vec![
            ("one cert", one.clone(), Ok(1)),
            ("two certs", format!("{one}{two}"), Ok(2)),
            (
                "comments around blocks",
                format!("# Issuer: test\n{one}\n# Issuer: two\n{two}"),
                Ok(2),
            ),
            ("crlf line ends", one.replace('\n', "\r\n"), Ok(1)),
            ("empty", String::new(), Err("is empty")),
            ("whitespace", " \n\t\n".into(), Err("is empty")),
            (
                "truncated",
                truncated,
                Err("block 1 of `ca.pem` has no `-----END` line"),
            ),
            (
                "second cert truncated",
                format!("{one}{}", &two[..40]),
                Err("block 2 of `ca.pem` has no `-----END` line"),
            ),
            (
                "garbage",
                "this is not a certificate\n".into(),
                Err("holds no PEM `CERTIFICATE` block"),
            ),
            (
                "binary",
                String::from_utf8_lossy(&[0x30, 0x82, 0x01, 0x0a, 0x02, 0x82]).into_owned(),
                Err("holds no PEM `CERTIFICATE` block"),
            ),
            (
                "unknown block type only",
                one.replace("CERTIFICATE", "TRUSTED CERTIFICATE"),
                Err("holds no PEM `CERTIFICATE` block"),
            ),
            (
                "key only",
                key.clone(),
                Err("block 1 of `ca.pem` is a `PRIVATE KEY`, not a `CERTIFICATE`"),
            ),
            (
                "cert and key",
                format!("{one}{key}"),
                Err("block 2 of `ca.pem` is a `PRIVATE KEY`"),
            ),
            (
                "bad base64",
                bad_base64,
                Err("block 1 of `ca.pem` is not valid base64"),
            ),
            (
                "base64 that is not a certificate",
                not_der,
                Err("certificate 1 of `ca.pem` is not a usable CA certificate"),
            ),
        ];
        for (name, text, expected) in cases {
            let got = CaBundle::from_pem("ca.pem", text.as_bytes());
            match (got, expected) {
                (Ok(bundle), Ok(count)) => {
                    assert_eq!(bundle.certificates(), count, "{name}");
                    assert_eq!(bundle.path(), Path::new("ca.pem"), "{name}");
                }
                (Err(error), Err(wanted)) => {
                    let text = crate::serve::error_chain(&error);
                    assert!(text.contains(wanted), "{name}: {text}\nwanted: {wanted}");
                    assert!(!text.contains('\n'), "{name}: {text}");
                }
                (got, expected) => panic!("{name}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn reads_files_strictly() {
        let dir = crate::issuer::test_keys::temp_dir("ca-file");
        let path = dir.join("ca.pem");
        let missing = CaBundle::read(dir.join("missing.pem")).unwrap_err();
        assert!(matches!(missing, CaFileError::Read { .. }), "{missing:?}");
        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            CaBundle::read(&path),
            Err(CaFileError::Empty { .. })
        ));
        let pem = ca_pem("meshgate file CA");
        std::fs::write(&path, &pem).unwrap();
        assert_eq!(CaBundle::read(&path).unwrap().certificates(), 1);
        let big = " ".repeat(usize::try_from(MAX_CA_FILE_BYTES).unwrap());
        std::fs::write(&path, format!("{pem}{big}")).unwrap();
        assert!(matches!(
            CaBundle::read(&path),
            Err(CaFileError::TooLarge { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
