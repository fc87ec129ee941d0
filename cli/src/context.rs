//! What every command needs: where the store is, how to reach registries.

use std::path::PathBuf;

use anyhow::Context as _;
use cairn_registry::RegistriesConf;
use cairn_store::Store;

/// Per-invocation settings shared by the commands.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
}

impl Context {
    /// `--root`/`CAIRN_ROOT`, else `/var/lib/cairn` for root, else
    /// `$XDG_DATA_HOME/cairn` (`~/.local/share/cairn`).
    pub fn new(root: Option<PathBuf>) -> Context {
        let root = root
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or_else(default_root);
        Context { root }
    }

    /// The store's root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Opens (creating if needed) the store.
    pub fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.root).with_context(|| {
            format!(
                "cannot open the store at {} (set --root or CAIRN_ROOT to use another directory)",
                self.root.display()
            )
        })
    }

    /// Search registries for short names, from registries.conf.
    pub fn search_registries(&self) -> anyhow::Result<Vec<String>> {
        Ok(RegistriesConf::load()?.search)
    }
}

fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/cairn");
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cairn")
}
