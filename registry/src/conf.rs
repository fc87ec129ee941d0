//! podman's `registries.conf` (containers-registries.conf(5)): search
//! registries for short names, insecure and blocked registries.
//!
//! Read from `$CONTAINERS_REGISTRIES_CONF` if set, else
//! `$XDG_CONFIG_HOME/containers/registries.conf` (or
//! `~/.config/containers/registries.conf`) if it exists, else
//! `/etc/containers/registries.conf`; then every `*.conf` in the matching
//! `registries.conf.d/` directory, in name order, later files overriding.
//! Both the V2 (`[[registry]]`) and the V1 (`[registries.insecure]`) syntax
//! are understood.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use cairn_fsutil::IoContext as _;

use crate::error::Error;
use cairn_store::{Reference, DOCKER_HUB};

/// One `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryEntry {
    /// The namespace it applies to (`prefix`, else `location`).
    pub prefix: String,
    /// Where images of that namespace are fetched from.
    pub location: String,
    /// Plain HTTP or unverified TLS allowed.
    pub insecure: bool,
    /// Pulls refused.
    pub blocked: bool,
}

/// The merged configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Registries tried, in order, for a short name.
    pub search: Vec<String>,
    /// Per-namespace settings.
    pub registries: Vec<RegistryEntry>,
    /// The files read, for messages.
    pub sources: Vec<PathBuf>,
}

impl Default for RegistriesConf {
    /// Without any file: short names mean Docker Hub, as with docker.
    fn default() -> Self {
        RegistriesConf {
            search: vec![DOCKER_HUB.to_owned()],
            registries: Vec::new(),
            sources: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct FileV2 {
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RegistryTable>,
    #[serde(default)]
    registries: Option<V1>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RegistryTable {
    #[serde(default)]
    location: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
}

#[derive(Deserialize, Default)]
struct V1 {
    #[serde(default)]
    search: Option<V1List>,
    #[serde(default)]
    insecure: Option<V1List>,
    #[serde(default)]
    block: Option<V1List>,
}

#[derive(Deserialize, Default)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

impl RegistriesConf {
    /// Loads the configuration the way podman finds it.
    pub fn load() -> Result<RegistriesConf, Error> {
        let main = match std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
            Some(p) => PathBuf::from(p),
            None => {
                let user = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .map(|c| c.join("containers/registries.conf"));
                match user {
                    Some(u) if u.exists() => u,
                    _ => PathBuf::from("/etc/containers/registries.conf"),
                }
            }
        };
        Self::load_from(&main)
    }

    /// Loads `main` (if it exists) and its `.d` directory.
    pub fn load_from(main: &Path) -> Result<RegistriesConf, Error> {
        let mut conf = RegistriesConf {
            search: Vec::new(),
            registries: Vec::new(),
            sources: Vec::new(),
        };
        let mut search_set = false;
        let mut files = Vec::new();
        if main.exists() {
            files.push(main.to_owned());
        }
        let dropin = main.with_extension("conf.d");
        if let Ok(rd) = fs::read_dir(&dropin) {
            let mut extra: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            extra.sort();
            files.extend(extra);
        }
        for file in files {
            let text =
                fs::read_to_string(&file).io_context("read registries configuration", &file)?;
            let parsed: FileV2 = toml::from_str(&text).map_err(|e| Error::Config {
                path: file.clone(),
                message: format!("invalid registries.conf: {}", e.message()),
            })?;
            if let Some(s) = parsed.unqualified_search_registries {
                conf.search = s;
                search_set = true;
            }
            for t in parsed.registry {
                let prefix = if t.prefix.is_empty() {
                    t.location.clone()
                } else {
                    t.prefix.clone()
                };
                if prefix.is_empty() {
                    return Err(Error::Config {
                        path: file.clone(),
                        message: "a [[registry]] table needs a location or a prefix".into(),
                    });
                }
                let location = if t.location.is_empty() {
                    prefix.clone()
                } else {
                    t.location
                };
                conf.registries.retain(|r| r.prefix != prefix);
                conf.registries.push(RegistryEntry {
                    prefix,
                    location,
                    insecure: t.insecure,
                    blocked: t.blocked,
                });
            }
            if let Some(v1) = parsed.registries {
                if let Some(s) = v1.search {
                    conf.search = s.registries;
                    search_set = true;
                }
                for (list, insecure) in [(v1.insecure, true), (v1.block, false)] {
                    for r in list.map(|l| l.registries).unwrap_or_default() {
                        let entry = match conf.registries.iter_mut().find(|e| e.prefix == r) {
                            Some(e) => e,
                            None => {
                                conf.registries.push(RegistryEntry {
                                    prefix: r.clone(),
                                    location: r.clone(),
                                    ..Default::default()
                                });
                                conf.registries.last_mut().expect("just pushed")
                            }
                        };
                        if insecure {
                            entry.insecure = true;
                        } else {
                            entry.blocked = true;
                        }
                    }
                }
            }
            conf.sources.push(file);
        }
        if !search_set {
            conf.search = vec![DOCKER_HUB.to_owned()];
        }
        Ok(conf)
    }

    /// The most specific entry for a reference: the longest `prefix` that is
    /// the reference's `registry/repository` or a parent of it. A prefix
    /// `*.example.com` matches any subdomain of example.com.
    pub fn entry_for(&self, reference: &Reference) -> Option<&RegistryEntry> {
        let full = reference.name();
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, &full, reference.registry()))
            .max_by_key(|e| e.prefix.len())
    }

    /// Whether the registry host is marked insecure.
    pub fn is_insecure(&self, reference: &Reference) -> bool {
        self.entry_for(reference).is_some_and(|e| e.insecure)
    }
}

fn prefix_matches(prefix: &str, full: &str, registry: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = registry.split(':').next().unwrap_or(registry);
        return host.ends_with(&format!(".{domain}"));
    }
    let prefix = prefix.trim_end_matches('/');
    full == prefix || full.starts_with(&format!("{prefix}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, dropins: &[(&str, &str)]) -> RegistriesConf {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        fs::write(&main, text).unwrap();
        if !dropins.is_empty() {
            let d = dir.path().join("registries.conf.d");
            fs::create_dir(&d).unwrap();
            for (n, t) in dropins {
                fs::write(d.join(n), t).unwrap();
            }
        }
        RegistriesConf::load_from(&main).unwrap()
    }

    #[test]
    fn v2_syntax() {
        let c = load(
            r#"
unqualified-search-registries = ["127.0.0.1:5000", "docker.io"]

[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
prefix = "quay.io/blocked"
location = "quay.io/blocked"
blocked = true

[[registry]]
location = "*.corp.example"
insecure = true
"#,
            &[],
        );
        assert_eq!(c.search, vec!["127.0.0.1:5000", "docker.io"]);
        let local: Reference = "127.0.0.1:5000/a/b:1".parse().unwrap();
        assert!(c.is_insecure(&local));
        let other: Reference = "127.0.0.1:5001/a/b:1".parse().unwrap();
        assert!(!c.is_insecure(&other));
        let blocked: Reference = "quay.io/blocked/x".parse().unwrap();
        assert!(c.entry_for(&blocked).unwrap().blocked);
        let not_blocked: Reference = "quay.io/blockedx/x".parse().unwrap();
        assert!(c.entry_for(&not_blocked).is_none());
        let corp: Reference = "reg.corp.example:8443/x".parse().unwrap();
        assert!(c.is_insecure(&corp));
    }

    #[test]
    fn v1_syntax_and_dropins_override() {
        let c = load(
            r#"
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = ["localhost:5000"]
"#,
            &[(
                "10-local.conf",
                r#"unqualified-search-registries = ["localhost:5000"]"#,
            )],
        );
        assert_eq!(c.search, vec!["localhost:5000"]);
        assert!(c.is_insecure(&"localhost:5000/x".parse().unwrap()));
        assert_eq!(c.sources.len(), 2);
    }

    #[test]
    fn missing_file_defaults_to_docker_hub() {
        let dir = tempfile::tempdir().unwrap();
        let c = RegistriesConf::load_from(&dir.path().join("none.conf")).unwrap();
        assert_eq!(c.search, vec!["docker.io"]);
        assert!(c.registries.is_empty());
    }

    #[test]
    fn bad_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        fs::write(&main, "unqualified-search-registries = 5").unwrap();
        let err = RegistriesConf::load_from(&main).unwrap_err().to_string();
        assert!(err.contains("registries.conf"), "{err}");
        assert!(err.contains("invalid"), "{err}");
    }
}
