//! Which containers a verb acts on: the names given, `--cidfile`s,
//! `--latest`, `--all` and `--filter`, resolved as podman does.

use std::path::PathBuf;

use cairn_engine::container::{Container, Containers};

use super::filters::Filters;
use super::usage;

/// The ways a verb can name its containers.
#[derive(Debug, Default)]
pub(crate) struct Selection<'a> {
    /// Names or ids given as arguments.
    pub names: &'a [String],
    /// `--cidfile` files holding ids.
    pub cidfiles: &'a [PathBuf],
    /// `--latest`: the last container created.
    pub latest: bool,
    /// `--all`.
    pub all: bool,
    /// `--ignore` (and `rm -f`): a missing container is no error.
    pub ignore: bool,
    /// `--filter`s, applied to every container (names or not).
    pub filters: &'a [String],
}

/// The containers found, and the names that matched none (in order).
#[derive(Debug)]
pub(crate) struct Targets {
    /// Found containers, in the order named (creation order for --all).
    pub found: Vec<Container>,
    /// What matched nothing (unless ignored).
    pub missing: Vec<String>,
}

impl Selection<'_> {
    /// Resolves the selection; a usage error when it names nothing.
    pub fn resolve(&self, containers: &Containers) -> anyhow::Result<Targets> {
        let filters = Filters::parse(self.filters)?;
        let given = !self.names.is_empty() || !self.cidfiles.is_empty();
        if self.latest && (given || self.all) {
            return Err(usage("--latest and containers cannot be used together"));
        }
        if self.all && given {
            return Err(usage(
                "when using the --all switch, you may not pass any containers names or IDs",
            ));
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        if self.all || (!given && !self.latest && !filters.is_empty()) {
            found = containers.list()?;
        } else if self.latest {
            found.extend(containers.list()?.pop());
            if found.is_empty() {
                return Err(usage("no containers to act on: --latest found none"));
            }
        } else if !given {
            return Err(usage(
                "you must provide at least one name or id, or --all, --latest, --filter",
            ));
        }
        let mut wanted: Vec<String> = Vec::new();
        for f in self.cidfiles {
            match std::fs::read_to_string(f) {
                Ok(s) => wanted.push(s.trim().to_owned()),
                Err(_) if self.ignore => {}
                Err(e) => return Err(usage(format!("reading CIDFile {}: {e}", f.display()))),
            }
        }
        wanted.extend(self.names.iter().cloned());
        for n in wanted {
            match containers.try_find(&n)? {
                Some(c) if found.iter().any(|f: &Container| f.config.id == c.config.id) => {}
                Some(c) => found.push(c),
                None if self.ignore => {}
                None => missing.push(n),
            }
        }
        if !filters.is_empty() {
            found.retain(|c| filters.matches(c, &c.live()));
        }
        Ok(Targets { found, missing })
    }
}

/// The name to print for `c`: as the user gave it, else its full id.
pub(crate) fn shown_name(given: &[String], c: &Container) -> String {
    given
        .iter()
        .find(|n| c.config.name == **n || c.config.id.starts_with(n.as_str()))
        .cloned()
        .unwrap_or_else(|| c.config.id.to_string())
}
