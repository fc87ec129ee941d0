//! Stage 2: apply changesets in order to an in-memory tree. Pure: no I/O, so
//! every whiteout and replacement rule has a table-driven test.
//!
//! Rules (OCI image spec, "Applying changesets", plus what containerd and
//! umoci do where the spec is silent):
//! - Removals first, per layer: `.wh.<name>` removes `<name>` and
//!   `.wh..wh..opq` removes a directory's children, but only what lower
//!   layers put there; an entry of the same layer survives its whiteout,
//!   wherever the whiteout sits in the layer.
//! - Then entries in layer order; a later duplicate wins. A directory over a
//!   directory keeps the children and takes the new metadata; anything else
//!   replaces what was there (a file over a directory drops the subtree).
//! - Parents that do not exist are created (0755, root). A parent path
//!   through a symlink is resolved inside the tree (as a chroot would:
//!   absolute targets start at the image root, `..` stops at it), so
//!   merged-/usr images work and nothing can point outside.
//! - A hardlink names an existing path (resolved likewise, its last
//!   component not followed); regular files share the target's inode, and
//!   so do symlinks (a hardlink to a symlink is a second name of the link
//!   itself, as `linkat(2)` without `AT_SYMLINK_FOLLOW` makes it, and as
//!   umoci does), not a second symlink.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::changeset::{Change, Changeset, DeviceKind, Entry, Meta, ObjectId};
use crate::path::RootPath;

/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_HOPS: usize = 40;

/// Deepest node of an image root. Planning, materializing and dropping the
/// tree recurse once per level and materializing holds a directory fd per
/// level: without a cap a layer naming `d/d/d/…` 100000 deep overflows the
/// stack and kills the process. 512 keeps the fds under the usual soft
/// `RLIMIT_NOFILE` of 1024; real images stay under 100.
const MAX_DEPTH: usize = 512;

/// A directory's children by name, shared copy-on-write: a plan's copy
/// costs nothing, the next layer copies only the directories it changes,
/// and [`Plan::diff`] skips every directory still shared with the plan
/// below.
pub type Children = std::sync::Arc<BTreeMap<Vec<u8>, Node>>;

/// A node of the planned tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Index of the layer that created it (whiteouts only remove lower ones).
    pub layer: usize,
    /// What it is.
    pub kind: NodeKind,
}

/// The node types of an image root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A directory and its children by name.
    Dir {
        /// Metadata.
        meta: Meta,
        /// Children.
        #[serde(with = "children_in_order")]
        children: Children,
    },
    /// A regular file.
    File {
        /// Metadata.
        meta: Meta,
        /// Content object.
        object: ObjectId,
        /// Size.
        size: u64,
        /// Inode group: files sharing it are hardlinks of one another.
        inode: u64,
    },
    /// A symlink.
    Symlink {
        /// Metadata.
        meta: Meta,
        /// Target, verbatim.
        target: Vec<u8>,
        /// Inode group, shared with [`NodeKind::File`]'s numbering, when a
        /// hardlink names the symlink (the names are one inode); 0 for a
        /// symlink with one name.
        inode: u64,
    },
    /// A device node.
    Device {
        /// Metadata.
        meta: Meta,
        /// Char or block.
        kind: DeviceKind,
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// A fifo.
    Fifo(Meta),
    /// In a layer diff only ([`Plan::diff`]): the name is gone, whatever
    /// the layers below have there (overlayfs' 0/0 character device).
    Whiteout,
}

/// Why a layer cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Too many symlinks while resolving a path.
    #[error("layer {layer}: too many levels of symbolic links resolving {path}")]
    Loop {
        /// Layer index.
        layer: usize,
        /// The path.
        path: RootPath,
    },
    /// A path whose parent is a file, a device or a fifo.
    #[error("layer {layer}: {path}: a parent is not a directory")]
    NotADirectory {
        /// Layer index.
        layer: usize,
        /// The path.
        path: RootPath,
    },
    /// A hardlink to nothing.
    #[error("layer {layer}: hardlink {path} points to {target}, which does not exist")]
    DanglingHardlink {
        /// Layer index.
        layer: usize,
        /// The link.
        path: RootPath,
        /// Its target.
        target: RootPath,
    },
    /// The root replaced by something other than a directory.
    #[error("layer {layer}: the image root cannot be replaced by a non-directory")]
    RootReplaced {
        /// Layer index.
        layer: usize,
    },
    /// A path nested deeper than an image root may be.
    #[error("layer {layer}: {path}/...: nested deeper than {max} directories")]
    TooDeep {
        /// Layer index.
        layer: usize,
        /// The first components of the path (as resolved).
        path: RootPath,
        /// The limit.
        max: usize,
    },
}

/// The planned image root. Serializable, so a store can keep the plan of
/// a layer and those below it and skip applying them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    root: Node,
    next_inode: u64,
    layers: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

fn implicit_dir(layer: usize) -> Node {
    Node {
        layer,
        kind: NodeKind::Dir {
            meta: Meta {
                mode: 0o755,
                ..Meta::default()
            },
            children: Children::default(),
        },
    }
}

impl Plan {
    /// An empty root (0755, root-owned).
    pub fn new() -> Plan {
        Plan {
            root: implicit_dir(0),
            next_inode: 0,
            layers: 0,
        }
    }

    /// Plans a whole image: every changeset, lowest first.
    pub fn from_layers<'a>(
        layers: impl IntoIterator<Item = &'a Changeset>,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan::new();
        for cs in layers {
            plan.apply(cs)?;
        }
        Ok(plan)
    }

    /// The root node.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Applies the next layer.
    pub fn apply(&mut self, cs: &Changeset) -> Result<(), PlanError> {
        let layer = self.layers + 1;
        self.layers = layer;
        for c in &cs.changes {
            match c.entry {
                Entry::Whiteout => self.remove_lower(layer, &c.path),
                Entry::Opaque => self.hide_lower(layer, &c.path),
                _ => Ok(()),
            }?;
        }
        for c in &cs.changes {
            if !matches!(c.entry, Entry::Whiteout | Entry::Opaque) {
                self.add(layer, c)?;
            }
        }
        Ok(())
    }

    /// Finds a node by exact path (no symlink following).
    pub fn get(&self, path: &RootPath) -> Option<&Node> {
        let mut node = &self.root;
        for c in path.components() {
            match &node.kind {
                NodeKind::Dir { children, .. } => node = children.get(c)?,
                _ => return None,
            }
        }
        Some(node)
    }

    fn get_mut(&mut self, path: &RootPath) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for c in path.components() {
            match &mut node.kind {
                NodeKind::Dir { children, .. } => node = Children::make_mut(children).get_mut(c)?,
                _ => return None,
            }
        }
        Some(node)
    }

    /// Resolves `path` inside the tree: symlinks in every component but the
    /// last are followed (and the last too with `follow_last`), absolute
    /// targets restart at the root, `..` never climbs above it. Missing
    /// components are kept as written. The result has no symlink in its
    /// parents, only real (or yet-to-be-created) directories.
    pub fn resolve(
        &self,
        layer: usize,
        path: &RootPath,
        follow_last: bool,
    ) -> Result<RootPath, PlanError> {
        if self.is_plain(path.components(), follow_last) {
            return Ok(path.clone());
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = path.components().iter().cloned().collect();
        let mut hops = 0;
        // The node at each prefix of `out` (the root first; `None` under
        // a missing name or a non-directory), so each step is one lookup.
        let mut nodes: Vec<Option<&Node>> = vec![Some(&self.root)];
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                if out.pop().is_some() {
                    nodes.pop();
                }
                continue;
            }
            if c.is_empty() || c == b"." {
                continue;
            }
            let last = todo.is_empty();
            let node = match nodes.last().copied().flatten().map(|n| &n.kind) {
                Some(NodeKind::Dir { children, .. }) => children.get(&c),
                _ => None,
            };
            out.push(c);
            if out.len() > MAX_DEPTH {
                // Deeper than any tree may be: stop before walking it.
                return Err(PlanError::TooDeep {
                    layer,
                    path: RootPath::from_components(out[..8].to_vec()),
                    max: MAX_DEPTH,
                });
            }
            if let Some(Node {
                kind: NodeKind::Symlink { target, .. },
                ..
            }) = node
            {
                if last && !follow_last {
                    break;
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(PlanError::Loop {
                        layer,
                        path: path.clone(),
                    });
                }
                out.pop();
                if target.first() == Some(&b'/') {
                    out.clear();
                    nodes.truncate(1);
                }
                for t in target.split(|&b| b == b'/').rev() {
                    todo.push_front(t.to_vec());
                }
                continue;
            }
            nodes.push(node);
        }
        Ok(RootPath::from_components(out))
    }

    /// Whether `path` resolves to itself: no symlink to follow (a missing
    /// name ends the lookups: nothing below it exists), no `.`, `..` or
    /// empty component, not too deep. The common case, and one lookup per
    /// component without allocating.
    fn is_plain(&self, comps: &[Vec<u8>], follow_last: bool) -> bool {
        if comps.len() > MAX_DEPTH {
            return false;
        }
        let mut node = Some(&self.root);
        for (i, c) in comps.iter().enumerate() {
            if c.is_empty() || c == b"." || c == b".." {
                return false;
            }
            node = match node.map(|n| &n.kind) {
                Some(NodeKind::Dir { children, .. }) => children.get(c.as_slice()),
                _ => None,
            };
            if let Some(Node {
                kind: NodeKind::Symlink { .. },
                ..
            }) = node
            {
                if follow_last || i + 1 < comps.len() {
                    return false;
                }
            }
        }
        true
    }

    /// Makes every component of `dir` a directory (creating missing ones),
    /// failing on a non-directory in the way, and returns its children.
    /// `dir` is resolved already.
    fn ensure_dir(
        &mut self,
        layer: usize,
        dir: &[Vec<u8>],
        for_path: &RootPath,
    ) -> Result<&mut BTreeMap<Vec<u8>, Node>, PlanError> {
        let mut node = &mut self.root;
        for c in dir {
            let NodeKind::Dir { children, .. } = &mut node.kind else {
                return Err(PlanError::NotADirectory {
                    layer,
                    path: for_path.clone(),
                });
            };
            let children = Children::make_mut(children);
            // Looked up first: most exist, and `entry` would copy the name.
            if !children.contains_key(c) {
                children.insert(c.clone(), implicit_dir(layer));
            }
            node = children.get_mut(c).expect("inserted above");
        }
        match &mut node.kind {
            NodeKind::Dir { children, .. } => Ok(Children::make_mut(children)),
            _ => Err(PlanError::NotADirectory {
                layer,
                path: for_path.clone(),
            }),
        }
    }

    fn children_mut(&mut self, dir: &RootPath) -> Option<&mut BTreeMap<Vec<u8>, Node>> {
        match &mut self.get_mut(dir)?.kind {
            NodeKind::Dir { children, .. } => Some(Children::make_mut(children)),
            _ => None,
        }
    }

    fn remove_lower(&mut self, layer: usize, path: &RootPath) -> Result<(), PlanError> {
        let Some(name) = path.file_name() else {
            return Ok(());
        };
        let dir = self.resolve(layer, &path.parent(), true)?;
        if let Some(children) = self.children_mut(&dir) {
            if children.get(name).is_some_and(|n| n.layer < layer) {
                children.remove(name);
            }
        }
        Ok(())
    }

    fn hide_lower(&mut self, layer: usize, dir: &RootPath) -> Result<(), PlanError> {
        let dir = self.resolve(layer, dir, true)?;
        if let Some(children) = self.children_mut(&dir) {
            children.retain(|_, n| n.layer >= layer);
        }
        Ok(())
    }

    fn add(&mut self, layer: usize, c: &Change) -> Result<(), PlanError> {
        let Some(name) = c.path.file_name() else {
            // The root itself: a directory entry sets its metadata.
            return match &c.entry {
                Entry::Dir(meta) => {
                    if let NodeKind::Dir { meta: m, .. } = &mut self.root.kind {
                        *m = meta.clone();
                    }
                    Ok(())
                }
                _ => Err(PlanError::RootReplaced { layer }),
            };
        };
        let name = name.to_vec();
        // The parent as written when nothing is to be followed on the way
        // (no copy), else resolved.
        let comps = c.path.components();
        let parent = &comps[..comps.len() - 1];
        let resolved;
        let dir: &[Vec<u8>] = if self.is_plain(parent, true) {
            parent
        } else {
            resolved = self.resolve(layer, &RootPath::from_components(parent.to_vec()), true)?;
            resolved.components()
        };
        if dir.len() >= MAX_DEPTH {
            return Err(PlanError::TooDeep {
                layer,
                path: RootPath::from_components(dir[..8].to_vec()),
                max: MAX_DEPTH,
            });
        }
        let kind = match &c.entry {
            Entry::Dir(meta) => {
                let children = self.ensure_dir(layer, dir, &c.path)?;
                if let Some(Node {
                    kind: NodeKind::Dir { meta: m, .. },
                    layer: l,
                }) = children.get_mut(&name)
                {
                    *m = meta.clone();
                    *l = layer;
                    return Ok(());
                }
                NodeKind::Dir {
                    meta: meta.clone(),
                    children: Children::default(),
                }
            }
            Entry::File { meta, object, size } => {
                self.next_inode += 1;
                NodeKind::File {
                    meta: meta.clone(),
                    object: *object,
                    size: *size,
                    inode: self.next_inode,
                }
            }
            Entry::Symlink { meta, target } => NodeKind::Symlink {
                meta: meta.clone(),
                target: target.clone(),
                inode: 0,
            },
            Entry::Device {
                meta,
                kind,
                major,
                minor,
            } => NodeKind::Device {
                meta: meta.clone(),
                kind: *kind,
                major: *major,
                minor: *minor,
            },
            Entry::Fifo(meta) => NodeKind::Fifo(meta.clone()),
            Entry::Hardlink { target } => {
                let resolved = self.resolve(layer, target, false)?;
                // A symlink's first hardlink makes it an inode group (looked
                // up first: `get_mut` copies the shared directories on the
                // way, which only a change needs).
                let ungrouped = matches!(
                    self.get(&resolved),
                    Some(Node {
                        kind: NodeKind::Symlink { inode: 0, .. },
                        ..
                    })
                );
                if ungrouped {
                    let next = self.next_inode + 1;
                    if let Some(Node {
                        kind: NodeKind::Symlink { inode, .. },
                        ..
                    }) = self.get_mut(&resolved)
                    {
                        *inode = next;
                        self.next_inode = next;
                    }
                }
                match self.get(&resolved) {
                    Some(n) if !matches!(n.kind, NodeKind::Dir { .. }) => n.kind.clone(),
                    _ => {
                        return Err(PlanError::DanglingHardlink {
                            layer,
                            path: c.path.clone(),
                            target: target.clone(),
                        })
                    }
                }
            }
            Entry::Whiteout | Entry::Opaque => unreachable!("handled in the removal pass"),
        };
        self.ensure_dir(layer, dir, &c.path)?
            .insert(name, Node { layer, kind });
        Ok(())
    }

    /// Visits every node, parents before children, with its path.
    pub fn walk(&self, mut f: impl FnMut(&RootPath, &Node)) {
        fn go(path: &RootPath, node: &Node, f: &mut dyn FnMut(&RootPath, &Node)) {
            f(path, node);
            if let NodeKind::Dir { children, .. } = &node.kind {
                for (name, child) in children.iter() {
                    go(&path.join(name), child, f);
                }
            }
        }
        go(&RootPath::root(), &self.root, &mut f);
    }

    /// What this plan changes over `below`, the plan of the layers under
    /// its top one (`below` + the top changeset = `self`), as an overlayfs
    /// lower directory: stacked over the diffs of the layers below, it
    /// shows exactly `self`. It holds every node the top layer created or
    /// replaced, a [`NodeKind::Whiteout`] for every name it removed
    /// (opaque directories included: the names below are listed, so no
    /// overlay xattr is needed), and the directories leading to them with
    /// their metadata in `self`. Parents are resolved paths (the plan has
    /// followed the layer's symlinked parents), so the diff never puts a
    /// name under a symlink.
    pub fn diff(&self, below: &Plan) -> Plan {
        let top = self.layers;
        let NodeKind::Dir { meta, children } = &self.root.kind else {
            unreachable!("the plan root is a directory");
        };
        let children = match &below.root.kind {
            NodeKind::Dir {
                children: lower, ..
            } if Children::ptr_eq(children, lower) => Children::default(),
            NodeKind::Dir {
                children: lower, ..
            } => Children::new(diff_children(children, lower, top)),
            _ => children.clone(),
        };
        Plan {
            root: Node {
                layer: self.root.layer,
                kind: NodeKind::Dir {
                    meta: meta.clone(),
                    children,
                },
            },
            next_inode: self.next_inode,
            layers: top,
        }
    }

    /// Bytes of regular file content, each inode counted once.
    pub fn content_bytes(&self) -> u64 {
        fn go(node: &Node, seen: &mut [bool]) -> u64 {
            match &node.kind {
                NodeKind::Dir { children, .. } => children.values().map(|c| go(c, seen)).sum(),
                NodeKind::File { size, inode, .. } => {
                    // Inodes are numbered 1..=next_inode as files are added.
                    match seen.get_mut(*inode as usize) {
                        Some(s) if !*s => {
                            *s = true;
                            *size
                        }
                        Some(_) => 0,
                        None => *size,
                    }
                }
                _ => 0,
            }
        }
        let mut seen = vec![false; self.next_inode as usize + 1];
        go(&self.root, &mut seen)
    }
}

/// [`Plan::diff`] of one directory present in both plans.
fn diff_children(
    upper: &BTreeMap<Vec<u8>, Node>,
    lower: &BTreeMap<Vec<u8>, Node>,
    top: usize,
) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    for (name, node) in upper {
        if let Some(d) = diff_node(node, lower.get(name), top) {
            out.insert(name.clone(), d);
        }
    }
    for name in lower.keys() {
        if !upper.contains_key(name) {
            out.insert(
                name.clone(),
                Node {
                    layer: top,
                    kind: NodeKind::Whiteout,
                },
            );
        }
    }
    out
}

/// [`Plan::diff`] of the node `upper` over `lower`, the node at its path
/// below the top layer; `None` when the top layer left it as it was.
fn diff_node(upper: &Node, lower: Option<&Node>, top: usize) -> Option<Node> {
    match (&upper.kind, lower.map(|l| &l.kind)) {
        // Overlayfs merges a directory with the directory below it: keep
        // what changed inside, and the metadata if the top layer set it.
        (NodeKind::Dir { meta, children }, Some(NodeKind::Dir { children: lc, .. })) => {
            // Still shared with the plan below: nothing inside changed.
            let children = if Children::ptr_eq(children, lc) {
                BTreeMap::new()
            } else {
                diff_children(children, lc, top)
            };
            (upper.layer == top || !children.is_empty()).then(|| Node {
                layer: upper.layer,
                kind: NodeKind::Dir {
                    meta: meta.clone(),
                    children: Children::new(children),
                },
            })
        }
        // Anything else hides what is below it (a directory over a
        // non-directory too): created by the top layer, all of it is new.
        _ => (upper.layer == top).then(|| upper.clone()),
    }
}

/// A directory's children as a sequence in name order, read back into a
/// map built in one pass (no search per name), each name checked as a
/// path component must be.
mod children_in_order {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::Arc;

    use serde::de::{Error as _, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use super::{Children, Node};
    use crate::path::valid_component;

    pub fn serialize<S: Serializer>(children: &Children, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(children.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Children, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Children;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a directory's children in name order")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Children, A::Error> {
                let mut v: Vec<(Vec<u8>, Node)> =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some((name, node)) = seq.next_element::<(Vec<u8>, Node)>()? {
                    if !valid_component(&name) {
                        return Err(A::Error::custom("a child's name is not a path component"));
                    }
                    if v.last().is_some_and(|(last, _)| *last >= name) {
                        return Err(A::Error::custom("children out of name order"));
                    }
                    v.push((name, node));
                }
                Ok(Arc::new(BTreeMap::from_iter(v)))
            }
        }
        d.deserialize_seq(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RootPath {
        RootPath::normalize(s.as_bytes()).unwrap()
    }

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            ..Meta::default()
        }
    }

    fn obj(n: u8) -> ObjectId {
        ObjectId([n; 32])
    }

    /// Tiny layer DSL: "d path", "f path N" (object N), "l path target"
    /// (symlink), "h path target" (hardlink), "w path" (whiteout),
    /// "o path" (opaque), "p path" (fifo).
    fn layer(spec: &str) -> Changeset {
        let changes = spec
            .split(';')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                let entry = match parts[0] {
                    "d" => Entry::Dir(meta(0o755)),
                    "f" => Entry::File {
                        meta: meta(0o644),
                        object: obj(parts[2].parse().unwrap()),
                        size: 1,
                    },
                    "l" => Entry::Symlink {
                        meta: meta(0o777),
                        target: parts[2].as_bytes().to_vec(),
                    },
                    "h" => Entry::Hardlink {
                        target: p(parts[2]),
                    },
                    "w" => Entry::Whiteout,
                    "o" => Entry::Opaque,
                    "p" => Entry::Fifo(meta(0o644)),
                    other => panic!("{other}"),
                };
                Change {
                    path: p(parts[1]),
                    entry,
                }
            })
            .collect();
        Changeset {
            changes,
            content_bytes: 0,
        }
    }

    /// The tree as sorted "path kind" lines.
    fn listing(plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        plan.walk(|path, node| {
            if path.is_root() {
                return;
            }
            let p = String::from_utf8_lossy(&path.to_bytes()).into_owned();
            out.push(match &node.kind {
                NodeKind::Dir { .. } => format!("{p}/"),
                NodeKind::File { object, inode, .. } => format!("{p}={}#{inode}", object.0[0]),
                NodeKind::Symlink {
                    target, inode: 0, ..
                } => {
                    format!("{p}->{}", String::from_utf8_lossy(target))
                }
                NodeKind::Symlink { target, inode, .. } => {
                    format!("{p}->{}#{inode}", String::from_utf8_lossy(target))
                }
                NodeKind::Fifo(_) => format!("{p}|"),
                NodeKind::Device { .. } => format!("{p}!"),
                NodeKind::Whiteout => format!("{p}~"),
            });
        });
        out
    }

    fn plan(layers: &[&str]) -> Result<Vec<String>, PlanError> {
        let sets: Vec<Changeset> = layers.iter().map(|l| layer(l)).collect();
        Plan::from_layers(&sets).map(|p| listing(&p))
    }

    fn ok(layers: &[&str]) -> String {
        plan(layers).unwrap().join(" ")
    }

    #[test]
    fn whiteout_and_replacement_rules() {
        let cases: &[(&[&str], &str)] = &[
            // Plain files and implicit parents.
            (&["f a/b/c 1"], "a/ a/b/ a/b/c=1#1"),
            // A whiteout removes the lower file and its subtree.
            (&["f a/x 1; f a/y 2", "w a/x"], "a/ a/y=2#2"),
            (&["d a; f a/b/c 1", "w a"], ""),
            // An entry and its whiteout in the same layer: the entry survives,
            // before or after it.
            (&["f a 1", "w a; f a 2"], "a=2#2"),
            (&["f a 1", "f a 2; w a"], "a=2#2"),
            // Whiteout of something that does not exist: nothing happens.
            (&["f a 1", "w b"], "a=1#1"),
            // Opaque hides the lower children, wherever the marker is.
            (&["f d/old 1; f d/keep 2", "f d/new 3; o d"], "d/ d/new=3#3"),
            (&["f d/old 1", "o d; f d/new 3"], "d/ d/new=3#2"),
            // Opaque on a directory created in the same layer hides nothing new.
            (&["o d; f d/x 1"], "d/ d/x=1#1"),
            // file -> dir, dir -> file, symlink -> dir.
            (&["f a 1", "d a; f a/b 2"], "a/ a/b=2#2"),
            (&["f a/b 1; f a/c 2", "f a 3"], "a=3#3"),
            (&["l a x", "d a"], "a/"),
            // Directory over directory keeps the children.
            (&["f a/b 1", "d a"], "a/ a/b=1#1"),
            // Duplicate entries: the last one wins.
            (&["f a 1; f a 2; f a 3"], "a=3#3"),
            // Hardlinks within a layer and across layers share the inode.
            (&["f a 1; h b a"], "a=1#1 b=1#1"),
            (&["f lib/x 1", "h y lib/x"], "lib/ lib/x=1#1 y=1#1"),
            // A hardlink to a symlink is a name of the link itself (one
            // inode), in its layer or across layers; a hardlink through a
            // symlinked parent still names the link, not its target.
            (&["l s target; h t s"], "s->target#1 t->target#1"),
            (
                &["f a 1; l s a", "h t s; h u t"],
                "a=1#1 s->a#2 t->a#2 u->a#2",
            ),
            (
                &["d real; l real/s ../a; l d real", "h t d/s"],
                "d->real real/ real/s->../a#1 t->../a#1",
            ),
            // Parent through a symlink, absolute or relative (merged /usr).
            (
                &["d usr/lib; l lib usr/lib", "f lib/ld.so 1"],
                "lib->usr/lib usr/ usr/lib/ usr/lib/ld.so=1#1",
            ),
            (
                &["d usr/lib; l lib /usr/lib", "f lib/ld.so 1"],
                "lib->/usr/lib usr/ usr/lib/ usr/lib/ld.so=1#1",
            ),
            // Replacing a symlink by a file replaces the link, not its target.
            (
                &["f etc/passwd 1; l link /etc/passwd", "f link 2"],
                "etc/ etc/passwd=1#1 link=2#2",
            ),
            // Whiteout through a symlinked parent stays inside the root.
            (&["f etc/x 1; l e /etc", "w e/x"], "e->/etc etc/"),
            // A fifo.
            (&["p run/ctl"], "run/ run/ctl|"),
        ];
        for (layers, want) in cases {
            assert_eq!(ok(layers), *want, "{layers:?}");
        }
    }

    /// What overlayfs shows for `upper` stacked over `lower`.
    fn overlay(upper: &Node, lower: Option<&Node>) -> Option<Node> {
        match (&upper.kind, lower.map(|l| &l.kind)) {
            (NodeKind::Whiteout, _) => None,
            (NodeKind::Dir { meta, children }, Some(NodeKind::Dir { children: lc, .. })) => {
                let mut out = BTreeMap::new();
                for (name, l) in lc.iter() {
                    if !children.contains_key(name) {
                        out.insert(name.clone(), l.clone());
                    }
                }
                for (name, u) in children.iter() {
                    if let Some(n) = overlay(u, lc.get(name)) {
                        out.insert(name.clone(), n);
                    }
                }
                Some(Node {
                    layer: upper.layer,
                    kind: NodeKind::Dir {
                        meta: meta.clone(),
                        children: Children::new(out),
                    },
                })
            }
            // Not merged: whiteouts inside hide nothing.
            (NodeKind::Dir { meta, children }, _) => Some(Node {
                layer: upper.layer,
                kind: NodeKind::Dir {
                    meta: meta.clone(),
                    children: Children::new(
                        children
                            .iter()
                            .filter_map(|(n, c)| overlay(c, None).map(|c| (n.clone(), c)))
                            .collect(),
                    ),
                },
            }),
            _ => Some(upper.clone()),
        }
    }

    /// Layer stacks covering every rule, each also with a quiet top layer
    /// (a sibling's tiny one) over it.
    fn stacking_cases() -> Vec<Vec<&'static str>> {
        let mut cases: Vec<Vec<&'static str>> = vec![
            vec!["f a/x 1; f a/y 2", "w a/x"],
            vec!["d a; f a/b/c 1", "w a"],
            vec!["f a 1", "w a; f a 2"],
            vec!["f a 1", "f a 2; w a"],
            vec!["f d/old 1; f d/keep 2", "f d/new 3; o d"],
            vec!["f d/old 1", "o d; f d/new 3"],
            vec!["f d/old 1; d d/sub; f d/sub/x 2", "w d; d d; f d/n 3"],
            vec!["f a 1", "d a; f a/b 2"],
            vec!["f a/b 1; f a/c 2", "f a 3"],
            vec!["l a x", "d a"],
            vec!["f a/b 1", "d a"],
            vec!["f lib/x 1", "h y lib/x"],
            vec![
                "d usr/lib; l lib usr/lib",
                "f lib/ld.so 1",
                "w lib/ld.so; f usr/lib/b 2",
            ],
            vec!["f etc/passwd 1; l link /etc/passwd", "f link 2"],
            vec!["f etc/x 1; l e /etc", "w e/x"],
            vec![
                "f a/b/c 1; f a/b/d 2",
                "f a/b/e 3",
                "o a; f a/z 4",
                "f a/b/c 5",
            ],
            vec!["d a; d a/b", "f a/b 1", "d a/b; f a/b/c 2", "w a"],
            // Removed and made again empty in one layer: nothing below shows.
            vec!["f d/old 1; d d/sub; f d/sub/x 2", "w d; d d"],
            vec!["f d/sub/x 1", "d d; w d/sub; d d/sub"],
        ];
        // A quiet top layer (a sibling's tiny one) over all of them.
        let more: Vec<Vec<&str>> = cases
            .iter()
            .map(|c| [c.as_slice(), &["f top 9"]].concat())
            .collect();
        cases.extend(more);
        cases
    }

    /// Every layer's diff against the plan below it, stacked as overlayfs
    /// would, shows the whole plan: on every case of the rule tables.
    #[test]
    fn layer_diffs_stacked_show_the_plan() {
        let cases = stacking_cases();
        for layers in &cases {
            let sets: Vec<Changeset> = layers.iter().map(|l| layer(l)).collect();
            let mut below = Plan::new();
            let mut stacked: Option<Node> = None;
            for cs in &sets {
                let mut plan = below.clone();
                plan.apply(cs).unwrap();
                let diff = plan.diff(&below);
                // Planned apart (nothing shared), the diff is the same.
                let apart = Plan::from_layers(&sets[..=below.layers])
                    .unwrap()
                    .diff(&Plan::from_layers(&sets[..below.layers]).unwrap());
                assert_eq!(listing(&apart), listing(&diff), "{layers:?}");
                stacked = overlay(diff.root(), stacked.as_ref());
                assert_eq!(
                    stacked.as_ref(),
                    Some(plan.root()),
                    "{layers:?}, after {cs:?}"
                );
                below = plan;
            }
        }
        // What a diff holds: the changes and the directories to them.
        let sets: Vec<Changeset> = ["f a/b/c 1; f a/b/d 2; f x 3", "w a/b/c; f a/n 4; o q"]
            .iter()
            .map(|l| layer(l))
            .collect();
        let below = Plan::from_layers(&sets[..1]).unwrap();
        let all = Plan::from_layers(&sets).unwrap();
        assert_eq!(
            listing(&all.diff(&below)),
            ["a/", "a/b/", "a/b/c~", "a/n=4#4"]
        );
    }

    /// A plan read back (a chain's saved plan) is the plan, and the next
    /// layer applies to it as to the plan itself.
    #[test]
    fn a_plan_read_back_is_the_plan() {
        for layers in stacking_cases() {
            let sets: Vec<Changeset> = layers.iter().map(|l| layer(l)).collect();
            for k in 1..sets.len() {
                let plan = Plan::from_layers(&sets[..k]).unwrap();
                let bytes = postcard::to_stdvec(&plan).unwrap();
                let mut back: Plan = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(back, plan, "{layers:?}");
                let mut next = plan.clone();
                next.apply(&sets[k]).unwrap();
                back.apply(&sets[k]).unwrap();
                assert_eq!(back, next, "{layers:?}, layer {k}");
                assert_eq!(listing(&back.diff(&plan)), listing(&next.diff(&plan)));
            }
        }
        // Names that are no path component, or out of order: refused.
        let plan = Plan::from_layers(&[layer("f ab 1; f ac 2")]).unwrap();
        let bytes = postcard::to_stdvec(&plan).unwrap();
        let at = |needle: &[u8]| {
            bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
        };
        let (ab, ac) = (at(b"\x02ab"), at(b"\x02ac"));
        for (i, to) in [(ab + 2, b'/'), (ab + 1, b'.'), (ac + 2, b'a')] {
            let mut bad = bytes.clone();
            bad[i] = to;
            if to == b'.' {
                bad[i + 1] = b'.';
            }
            assert!(postcard::from_bytes::<Plan>(&bad).is_err(), "{i} {to}");
        }
    }

    #[test]
    fn symlinks_never_lead_outside_the_root() {
        // Escapes through .. and absolute targets are re-rooted.
        let cases: &[(&[&str], &str)] = &[
            (
                &["l up ../../../..", "f up/etc/passwd 1"],
                "etc/ etc/passwd=1#1 up->../../../..",
            ),
            (&["l abs /", "f abs/x 1"], "abs->/ x=1#1"),
            (
                &["d a; l a/b ../../../tmp", "f a/b/c 1"],
                "a/ a/b->../../../tmp tmp/ tmp/c=1#1",
            ),
            // A chain of links.
            (
                &["l a b; l b c; l c /real", "f a/x 1"],
                "a->b b->c c->/real real/ real/x=1#1",
            ),
            // A hardlink target through a symlink.
            (
                &["f real/f 1; l s /real", "h link s/f"],
                "link=1#1 real/ real/f=1#1 s->/real",
            ),
        ];
        for (layers, want) in cases {
            assert_eq!(ok(layers), *want, "{layers:?}");
        }
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            plan(&["l a b; l b a", "f a/x 1"]),
            Err(PlanError::Loop { .. })
        ));
        assert!(matches!(
            plan(&["f a 1", "f a/b 2"]),
            Err(PlanError::NotADirectory { .. })
        ));
        // Depth: 512 levels at most, however the path is reached.
        let deep = |n: usize| format!("{}f", "d/".repeat(n - 1));
        assert!(plan(&[&format!("f {} 1", deep(MAX_DEPTH))]).is_ok());
        for layers in [
            vec![format!("f {} 1", deep(MAX_DEPTH + 1))],
            vec![format!("d {}", deep(100_000))],
            vec![format!("l a {}", deep(MAX_DEPTH)), "f a/x 1".to_owned()],
        ] {
            let layers: Vec<&str> = layers.iter().map(String::as_str).collect();
            assert!(
                matches!(plan(&layers), Err(PlanError::TooDeep { max: 512, .. })),
                "{:?}",
                plan(&layers).map(|l| l.len())
            );
        }
        assert!(matches!(
            plan(&["h b nothing"]),
            Err(PlanError::DanglingHardlink { .. })
        ));
        assert!(matches!(
            plan(&["d x", "h b x"]),
            Err(PlanError::DanglingHardlink { .. })
        ));
        let root_link = Changeset {
            changes: vec![Change {
                path: RootPath::root(),
                entry: Entry::Symlink {
                    meta: meta(0o777),
                    target: b"/etc".to_vec(),
                },
            }],
            content_bytes: 0,
        };
        assert!(matches!(
            Plan::from_layers([&root_link]),
            Err(PlanError::RootReplaced { layer: 1 })
        ));
    }

    #[test]
    fn root_metadata_and_sizes() {
        let cs = Changeset {
            changes: vec![
                Change {
                    path: RootPath::root(),
                    entry: Entry::Dir(meta(0o700)),
                },
                Change {
                    path: p("a"),
                    entry: Entry::File {
                        meta: meta(0o644),
                        object: obj(1),
                        size: 10,
                    },
                },
                Change {
                    path: p("b"),
                    entry: Entry::Hardlink { target: p("a") },
                },
            ],
            content_bytes: 10,
        };
        let plan = Plan::from_layers([&cs]).unwrap();
        match &plan.root().kind {
            NodeKind::Dir { meta, .. } => assert_eq!(meta.mode, 0o700),
            _ => panic!(),
        }
        assert_eq!(plan.content_bytes(), 10, "hardlinks count once");
    }
}
