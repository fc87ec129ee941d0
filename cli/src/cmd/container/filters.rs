//! `--filter` over containers (ps, stop, rm, restart, prune): podman's
//! rule is that the same key given twice matches either value (OR), except
//! `label` and `label!`, which must all match (AND); different keys must
//! all match.

use std::collections::BTreeMap;

use cairn_engine::container::{Container, Live, Status};

use super::usage;

/// The keys cairn knows, podman's names.
const KEYS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "until",
];

/// podman's container states as `status=` accepts them.
const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "stopped",
    "exited",
    "unknown",
    "configured",
    "stopping",
    "removing",
];

/// Parsed `--filter KEY=VALUE`s, grouped by key.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Parses the flags; podman's errors for an unknown key or state.
    pub fn parse(given: &[String]) -> anyhow::Result<Filters> {
        Filters::parse_keys(given, KEYS)
    }

    /// `prune`'s: `label=` and `label!=` only.
    pub fn parse_labels(given: &[String]) -> anyhow::Result<Filters> {
        Filters::parse_keys(given, &["label", "label!"])
    }

    fn parse_keys(given: &[String], keys: &[&str]) -> anyhow::Result<Filters> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in given {
            let (k, v) = match f.split_once("!=") {
                Some((k, v)) if !k.contains('=') => (format!("{k}!"), v),
                _ => {
                    let (k, v) = f.split_once('=').ok_or_else(|| {
                        usage(format!(
                            "invalid filter {f:?}, should be of the form key=value"
                        ))
                    })?;
                    (k.to_owned(), v)
                }
            };
            if !keys.contains(&k.as_str()) {
                return Err(usage(format!("{k} is an invalid filter")));
            }
            if k == "status" && !STATES.contains(&v) {
                return Err(usage(format!(
                    "unknown container state: {v}: invalid argument"
                )));
            }
            if k == "exited" && v.parse::<i32>().is_err() {
                return Err(usage(format!("exited code out of range {v:?}")));
            }
            by_key.entry(k).or_default().push(v.to_owned());
        }
        Ok(Filters { by_key })
    }

    /// Whether no filter was given.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether a key is among the filters.
    pub fn has(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Whether `c` passes every key (any of a key's values; every label).
    pub fn matches(&self, c: &Container, l: &Live) -> bool {
        self.by_key.iter().all(|(k, vs)| match k.as_str() {
            "label" | "label!" => vs.iter().all(|v| matches_one(c, l, k, v)),
            _ => vs.iter().any(|v| matches_one(c, l, k, v)),
        })
    }

    /// `before=`/`since=` name other containers: resolved by the caller
    /// into creation times; `until=` is a time.
    pub fn times(&self, key: &str) -> &[String] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }
}

fn label_matches(c: &Container, v: &str) -> bool {
    let labels = &c.config.labels;
    match v.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(v),
    }
}

fn matches_one(c: &Container, l: &Live, k: &str, v: &str) -> bool {
    let cfg = &c.config;
    match k {
        "name" => name_matches(&cfg.name, v),
        "id" => cfg.id.starts_with(&v.to_ascii_lowercase()),
        "label" => label_matches(c, v),
        "label!" => !label_matches(c, v),
        "status" => {
            let s = l.status.as_str();
            s == v || (v == "stopped" && s == "exited")
        }
        "exited" => l.status == Status::Exited && v.parse::<i32>().is_ok_and(|n| n == l.exit_code),
        "ancestor" => {
            let v = v.trim_start_matches("sha256:");
            cfg.image.id_hex().starts_with(v)
                || cfg.image.name == v
                || cfg.image.name.ends_with(&format!("/{v}"))
                || cfg.image.name.ends_with(&format!("/{v}:latest"))
                || cfg.image.name.split(':').next() == Some(v)
                || cfg.image.name.rsplit('/').next() == Some(v)
        }
        // Resolved against other containers by `ps` (times).
        _ => true,
    }
}

/// podman matches names by regular expression; cairn supports the common
/// forms: exact, `^prefix`, `suffix$`, and substrings.
pub(crate) fn name_matches(name: &str, pattern: &str) -> bool {
    match (pattern.strip_prefix('^'), pattern.strip_suffix('$')) {
        (Some(p), _) if p.ends_with('$') => name == &p[..p.len() - 1],
        (Some(p), _) => name.starts_with(p),
        (None, Some(s)) => name.ends_with(s),
        (None, None) => name.contains(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_engine::container::Config;

    fn ctr(name: &str, labels: &[(&str, &str)]) -> Container {
        let mut config = Config {
            name: name.into(),
            ..Config::default()
        };
        for (k, v) in labels {
            config.labels.insert((*k).into(), (*v).into());
        }
        Container {
            dir: Default::default(),
            config,
            state: Default::default(),
        }
    }

    fn pass(filters: &[&str], c: &Container) -> bool {
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        Filters::parse(&f).unwrap().matches(c, &c.live())
    }

    /// podman: the same key ORed, labels ANDed, different keys ANDed.
    #[test]
    fn same_key_or_labels_and_keys_and() {
        let l1 = ctr("l1", &[("a", "1"), ("b", "2")]);
        let l2 = ctr("l2", &[("a", "1")]);
        for c in [&l1, &l2] {
            assert!(pass(&["name=l1", "name=l2"], c));
            assert!(pass(&["name=l", "status=created"], c));
            assert!(!pass(&["name=l", "status=running"], c));
        }
        assert!(pass(&["label=a=1", "label=b=2"], &l1));
        assert!(!pass(&["label=a=1", "label=b=2"], &l2));
        let labels = |f: &[&str], c: &Container| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            Filters::parse_labels(&f).unwrap().matches(c, &c.live())
        };
        assert!(labels(&["label!=b"], &l2));
        assert!(!labels(&["label!=b"], &l1));
        assert!(pass(&["status=stopped", "status=created"], &l1));
    }

    #[test]
    fn podmans_errors() {
        let e = |f: &str| format!("{:#}", Filters::parse(&[f.to_owned()]).unwrap_err());
        assert_eq!(e("bogus=1"), "bogus is an invalid filter");
        assert_eq!(
            e("status=bogus"),
            "unknown container state: bogus: invalid argument"
        );
        assert!(name_matches("web1", "web"));
        assert!(name_matches("web1", "^web1$"));
        assert!(!name_matches("web12", "^web1$"));
    }
}
