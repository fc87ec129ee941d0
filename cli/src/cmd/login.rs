//! `login` and `logout`: credentials in podman's auth file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use cairn_registry::{verify_login, AuthFiles, Credentials, RegistryOptions};
use clap::Args;

use crate::context::Context;
use crate::exit;

/// `login` flags.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Auth file to write.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Directory of CA certificates (*.crt) to trust for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Print the user name stored for the registry and exit.
    #[arg(long)]
    pub get_login: bool,
    /// Also print the auth file the credentials were written to.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `logout` flags.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub registry: Option<String>,
    /// Remove all stored credentials.
    #[arg(short, long)]
    pub all: bool,
    /// Auth file to edit.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

/// The registry part of what a user typed (`https://quay.io/v2/` → `quay.io`),
/// or a `registry/namespace` key.
fn registry_key(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.trim_end_matches('/');
    let s = s
        .strip_suffix("/v2")
        .or_else(|| s.strip_suffix("/v1"))
        .unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_owned(),
    }
}

/// `cairn login`.
pub fn login(_ctx: &Context, a: LoginArgs) -> anyhow::Result<u8> {
    let files = AuthFiles::discover(a.authfile.as_deref());
    let key = registry_key(&a.registry);
    let host = key.split('/').next().unwrap_or(&key).to_owned();
    if a.get_login {
        return match files.credentials_for_registry(&key)? {
            Some(c) => {
                println!("{}", c.username);
                Ok(0)
            }
            None => Err(exit::with_code(
                exit::ENGINE,
                format!("not logged into {key}"),
            )),
        };
    }
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => {
            return Err(exit::with_code(
                exit::ENGINE,
                "--password and --password-stdin are mutually exclusive",
            ))
        }
        (Some(p), false) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => prompt("Password: ")?,
    };
    if username.is_empty() || password.is_empty() {
        return Err(exit::with_code(
            exit::ENGINE,
            "username and password must not be empty",
        ));
    }
    let creds = Credentials { username, password };
    let mut opts = RegistryOptions::from_env()?;
    opts.tls_verify = a.tls_verify;
    opts.auth_files = files.clone();
    opts.cert_dir = a.cert_dir.clone();
    super::runtime()?.block_on(verify_login(&host, &creds, &opts))?;
    let written = files.store(&key, &creds)?;
    if a.verbose {
        // podman's fmt.Println("Used: ", file): two spaces.
        println!("Used:  {}", written.display());
    }
    println!("Login Succeeded!");
    Ok(0)
}

fn prompt(label: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(exit::with_code(
            exit::ENGINE,
            format!(
                "{} not given and standard input is not a terminal: pass -u/-p or --password-stdin",
                label.trim_end_matches(": ").to_lowercase()
            ),
        ));
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// `cairn logout`.
pub fn logout(_ctx: &Context, a: LogoutArgs) -> anyhow::Result<u8> {
    let files = AuthFiles::discover(a.authfile.as_deref());
    if a.all {
        files.remove_all()?;
        println!("Removed login credentials for all registries");
        return Ok(0);
    }
    let Some(registry) = a.registry else {
        return Err(exit::with_code(
            exit::ENGINE,
            "registry must be given (or --all)",
        ));
    };
    let key = registry_key(&registry);
    if files.remove(&key)? {
        println!("Removed login credentials for {key}");
        Ok(0)
    } else {
        Err(exit::with_code(
            exit::ENGINE,
            format!("not logged into {key} (in {})", files.primary().display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys() {
        assert_eq!(
            super::registry_key("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(super::registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(super::registry_key("http://quay.io/v2/"), "quay.io");
        assert_eq!(super::registry_key("quay.io/org"), "quay.io/org");
    }
}
