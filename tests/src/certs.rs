//! Throwaway X.509 material made with the `openssl` CLI: a CA plus a server certificate for
//! 127.0.0.1/localhost (registry TLS), and a self-signed ECDSA P-256 certificate whose key signs
//! registry tokens.
//!
//! The config file is ours, not the host's openssl.cnf, so the extensions are exactly these:
//! rustls (webpki) rejects a certificate marked CA:TRUE as a server certificate, so the server
//! certificate is a separate CA:FALSE leaf with serverAuth and the subjectAltNames clients check.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;

use crate::util::{run, write_file};

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = cairn-tests

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Files of a TLS setup: `ca.crt` alone in `cert_dir` (the layout `--cert-dir` of skopeo and
/// containers-registries.d expect), the server pair elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub cert_dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Creates a CA and a server certificate for 127.0.0.1 and localhost under `dir`.
pub(crate) fn make_tls(dir: &Path) -> anyhow::Result<TlsFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cnf = dir.join("openssl.cnf");
    write_file(&cnf, OPENSSL_CNF)?;
    let cert_dir = dir.join("ca");
    std::fs::create_dir_all(&cert_dir).with_context(|| format!("create {}", cert_dir.display()))?;
    let files = TlsFiles {
        ca_cert: cert_dir.join("ca.crt"),
        cert_dir,
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    self_signed(&cnf, "cairn-tests CA", &ca_key, &files.ca_cert)?;
    run(Command::new("openssl")
        .args(["req", "-new", "-config"])
        .arg(&cnf)
        .args(ec_key_args())
        .arg("-keyout")
        .arg(&files.server_key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/CN=127.0.0.1"]))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&files.ca_cert)
        .arg("-CAkey")
        .arg(&ca_key)
        .args(["-set_serial", &serial(), "-days", "7", "-extfile"])
        .arg(&cnf)
        .args(["-extensions", "v3_server", "-out"])
        .arg(&files.server_cert))?;
    Ok(files)
}

/// A token signing identity: the PKCS#8 key for ring and the certificate (PEM file for the
/// registry's `rootcertbundle`, base64 DER for the JWT `x5c` header).
#[derive(Debug, Clone)]
pub(crate) struct SigningCert {
    pub cert_pem: PathBuf,
    pub cert_der_b64: String,
    pub key_pkcs8: Vec<u8>,
}

/// Creates a self-signed ECDSA P-256 certificate and key under `dir`.
pub(crate) fn make_signing_cert(dir: &Path) -> anyhow::Result<SigningCert> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cnf = dir.join("openssl.cnf");
    write_file(&cnf, OPENSSL_CNF)?;
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    self_signed(&cnf, "cairn-tests token signer", &key, &cert)?;
    let key_pem =
        std::fs::read_to_string(&key).with_context(|| format!("read {}", key.display()))?;
    let cert_text =
        std::fs::read_to_string(&cert).with_context(|| format!("read {}", cert.display()))?;
    let cert_der = pem_body(&cert_text, "CERTIFICATE")?;
    Ok(SigningCert {
        cert_pem: cert,
        cert_der_b64: base64::engine::general_purpose::STANDARD.encode(cert_der),
        key_pkcs8: pem_body(&key_pem, "PRIVATE KEY")?,
    })
}

fn self_signed(cnf: &Path, cn: &str, key: &Path, cert: &Path) -> anyhow::Result<()> {
    run(Command::new("openssl")
        .args(["req", "-x509", "-config"])
        .arg(cnf)
        .args(["-extensions", "v3_ca"])
        .args(ec_key_args())
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .args([
            "-days",
            "7",
            "-set_serial",
            &serial(),
            "-subj",
            &format!("/CN={cn}"),
        ]))?;
    Ok(())
}

fn ec_key_args() -> [&'static str; 5] {
    [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]
}

/// A serial number unlikely to repeat between runs (clients may cache by issuer + serial).
fn serial() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}",
        (nanos ^ u128::from(std::process::id())) & 0x7fff_ffff_ffff_ffff
    )
}

/// Decodes the first PEM block labelled `label` (`-----BEGIN <label>-----`).
fn pem_body(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .with_context(|| format!("no {begin} in PEM"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .with_context(|| format!("no {end} in PEM"))?
        + start;
    let b64: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("decode {label} PEM body"))
}
