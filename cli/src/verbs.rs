//! What cairn answers for a verb it does not have: podman's verbs that
//! cairn does not implement are refused by name with the reason, in one
//! line (`Error: cairn does not support `pod` (...)`); any other word gets
//! podman's `unrecognized command` lines. Both exit 125, as podman's usage
//! errors do, and neither touches the store.

/// podman 4.3's verbs (as `VERB` or `GROUP VERB`) that cairn lacks, and
/// why. A group's entry covers its sub-verbs.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("auto-update", "no image auto-update"),
    ("image scp", "images cannot be copied to other hosts"),
    (
        "image diff",
        "image diffs are not shown; `diff` works on containers",
    ),
    (
        "image mount",
        "image roots are not mounted; `mount` works on containers",
    ),
    (
        "image unmount",
        "image roots are not mounted; `unmount` works on containers",
    ),
    ("image search", "no registry search"),
    ("search", "no registry search"),
    ("image sign", "no image signing"),
    ("image trust", "no image trust policy"),
    ("pod stats", "cairn has no pods"),
    ("container checkpoint", "no checkpoint and restore (CRIU)"),
    ("container restore", "no checkpoint and restore (CRIU)"),
    (
        "container clone",
        "containers cannot be cloned; create a new one",
    ),
    (
        "container cleanup",
        "cairn-monitor cleans up when the container exits",
    ),
    ("container runlabel", "no image run labels"),
    (
        "network create",
        "cairn has no named networks: use --network host, none or private",
    ),
    (
        "network rm",
        "cairn has no named networks: use --network host, none or private",
    ),
    (
        "network prune",
        "cairn has no named networks: use --network host, none or private",
    ),
    (
        "network connect",
        "cairn has no named networks: use --network host, none or private",
    ),
    (
        "network disconnect",
        "cairn has no named networks: use --network host, none or private",
    ),
    (
        "network reload",
        "cairn has no named networks: use --network host, none or private",
    ),
    ("pod", "cairn has no pods"),
    ("kube", "cairn has no pods, so no Kubernetes YAML"),
    ("generate kube", "cairn has no pods, so no Kubernetes YAML"),
    ("generate spec", "no specgen output"),
    ("manifest", "no manifest lists"),
    ("secret", "no secrets store"),
    (
        "system connection",
        "no remote connections: cairn has no service",
    ),
    ("system service", "no API service: cairn has no daemon"),
    (
        "unshare",
        "no unshare shell; rootless commands enter the user namespace themselves",
    ),
    ("volume export", "volumes cannot be exported yet"),
    ("volume import", "volumes cannot be imported yet"),
    (
        "volume mount",
        "volume directories are not mounted separately",
    ),
    (
        "volume unmount",
        "volume directories are not mounted separately",
    ),
    ("volume reload", "no volume plugins"),
];

/// Why cairn refuses `path` (verbs without `cairn`, e.g. `["pod",
/// "create"]`), if it is one of podman's: the longest entry that is a
/// prefix of it.
pub fn unsupported(path: &[&str]) -> Option<(String, &'static str)> {
    (1..=path.len().min(2)).rev().find_map(|n| {
        let key = path[..n].join(" ");
        UNSUPPORTED
            .iter()
            .find(|(verb, _)| *verb == key)
            .map(|(verb, why)| ((*verb).to_owned(), *why))
    })
}

/// The lines for a verb cairn does not know: `known` is the verbs parsed
/// so far with `cairn` first (`["cairn", "network"]`), `word` the one that
/// is not a verb.
pub fn message(known: &[String], word: &str) -> String {
    let mut path: Vec<&str> = known.iter().skip(1).map(String::as_str).collect();
    path.push(word);
    if let Some((verb, why)) = unsupported(&path) {
        return format!("Error: cairn does not support `{verb}` ({why})");
    }
    format!(
        "Error: unrecognized command `{} {word}`\nTry '{} --help' for more information",
        known.join(" "),
        known.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_verbs_are_refused_with_a_reason_and_others_are_unrecognized() {
        let cairn = |v: &[&str]| -> Vec<String> { v.iter().map(|s| (*s).to_owned()).collect() };
        assert_eq!(
            message(&cairn(&["cairn"]), "pod"),
            "Error: cairn does not support `pod` (cairn has no pods)"
        );
        assert_eq!(
            message(&cairn(&["cairn", "network"]), "create"),
            "Error: cairn does not support `network create` (cairn has no named networks: use --network host, none or private)"
        );
        assert_eq!(
            message(&cairn(&["cairn", "image"]), "scp"),
            "Error: cairn does not support `image scp` (images cannot be copied to other hosts)"
        );
        assert_eq!(
            message(&cairn(&["cairn"]), "nosuch"),
            "Error: unrecognized command `cairn nosuch`\nTry 'cairn --help' for more information"
        );
        assert_eq!(
            message(&cairn(&["cairn", "network"]), "nosuch"),
            "Error: unrecognized command `cairn network nosuch`\nTry 'cairn network --help' for more information"
        );
        // A sub-verb of a refused group is refused as the group.
        assert_eq!(unsupported(&["manifest", "add"]).unwrap().0, "manifest");
        assert_eq!(unsupported(&["network", "ls"]), None);
    }
}
