//! What a build step puts into a root: COPY/ADD sources (the context's
//! files, heredocs, another stage's or image's files) written into a step
//! container by a child chrooted into its root (`cairn __build-copy`, as
//! `cp` does), RUN's mounts, and the layers made without a container (a
//! FROM scratch stage's first files, `--squash-all`).

use std::fs;
use std::io::{self, Read, Seek as _, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use cairn_containerfile::context::{Source as CtxSource, SourceKind, TarOptions};
use cairn_containerfile::parse::{Copy, Instruction};
use cairn_engine::commit::{self, CommitOptions, Made, NewImage};
use cairn_engine::container::{Container, Containers};
use cairn_store::Image;
use clap::Args;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::stage::{step_error, Build};
use super::usage;
use crate::cmd::container::{create_for_build, remove_for_build};
use crate::context::Context;

/// `__build-copy` arguments (internal).
#[derive(Debug, Args)]
pub struct BuildCopyArgs {
    /// in (a tar on stdin into the container) or out (paths of the container as a tar on stdout).
    pub mode: String,
    /// Container id.
    pub id: String,
    /// in: the destination in the container.
    #[arg(long)]
    pub dest: Option<String>,
    /// in: the stream is one file that becomes `dest` unless `dest` is a directory.
    #[arg(long)]
    pub file: bool,
    /// in: the first entry says whether the stream is one file (`out`'s marker).
    #[arg(long)]
    pub marker: bool,
    /// in: USER[:GROUP] that owns what is written, resolved in the container.
    #[arg(long)]
    pub chown: Option<String>,
    /// in: octal mode of what is written.
    #[arg(long)]
    pub chmod: Option<String>,
    /// in: the step's working directory, made if missing (as buildah's
    /// COPY does).
    #[arg(long)]
    pub workdir: Option<String>,
    /// out: the paths in the container.
    pub paths: Vec<String>,
}

/// The name of `out`'s first entry, saying `file` or `dir`.
const MARKER: &str = ".cairn-copy-kind";

/// What a COPY or ADD reads.
pub(crate) struct Sources {
    /// For the cache key: the content's checksum (or the source image's
    /// id and the paths).
    pub checksum: String,
    pub from: From,
    /// One file: it may become `dest` itself.
    pub single_file: bool,
    /// Given to the child for sources whose modes are not set already.
    pub chmod: Option<String>,
}

pub(crate) enum From {
    Context(Vec<CtxSource>, TarOptions),
    Heredocs(Vec<(String, String)>),
    Image(Box<Image>, Vec<String>),
}

fn parse_chmod(s: &str) -> anyhow::Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            usage(format!(
                "invalid --chmod {s:?}: give an octal mode such as 0755"
            ))
        })
}

/// COPY/ADD's sources.
pub(crate) fn source(
    b: &Build<'_>,
    stage: usize,
    inst: &Instruction,
    c: &Copy,
    add: bool,
    vars: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Sources> {
    let chmod = c.chmod.as_deref().map(parse_chmod).transpose()?;
    if c.parents {
        return Err(step_error(b.file(), inst, "--parents is not supported"));
    }
    if c.checksum.is_some() || c.keep_git_dir {
        return Err(step_error(
            b.file(),
            inst,
            "ADD --checksum/--keep-git-dir apply to remote sources, which cairn does not fetch",
        ));
    }
    if !c.heredocs.is_empty() {
        // Unquoted delimiters: the body is expanded (BuildKit's rule).
        let mut files: Vec<(String, String)> = Vec::new();
        for h in &c.heredocs {
            let content = if h.expand {
                cairn_containerfile::expand::expand_heredoc(&h.content, vars)
                    .map_err(|e| step_error(b.file(), inst, &e.to_string()))?
            } else {
                h.content.clone()
            };
            files.push((h.name.clone(), content));
        }
        let mut h = Sha256::new();
        for (n, t) in &files {
            h.update(n.as_bytes());
            h.update([0]);
            h.update(t.as_bytes());
            h.update([0]);
        }
        h.update(format!("{chmod:?}").as_bytes());
        return Ok(Sources {
            checksum: format!("sha256:{}", hex::encode(h.finalize())),
            single_file: files.len() == 1,
            from: From::Heredocs(files),
            chmod: c.chmod.clone(),
        });
    }
    for s in &c.sources {
        if s.contains("://") || s.starts_with("git@") {
            return Err(step_error(
                b.file(),
                inst,
                &format!(
                    "{s}: remote sources are not fetched (this machine has no network for builds): download it into the context and COPY it"
                ),
            ));
        }
    }
    if let Some(from) = &c.from {
        let image = match b.result_of(from, stage) {
            Some(i) => i,
            None => b.pull_image(from)?,
        };
        let checksum = format!("{}:{}:{:?}", image.digest(), c.sources.join("\n"), chmod);
        let single = c.sources.len() == 1
            && !c.sources[0].ends_with('/')
            && !c.sources[0].contains(['*', '?', '[']);
        return Ok(Sources {
            checksum,
            single_file: single,
            from: From::Image(Box::new(image), c.sources.clone()),
            chmod: c.chmod.clone(),
        });
    }
    let ctx = b.context();
    let found = if add {
        ctx.sources_for_add(&c.sources)
    } else {
        ctx.sources(&c.sources)
    }
    .map_err(|e| step_error(b.file(), inst, &e.to_string()))?;
    let opts = TarOptions {
        chmod,
        extract_archives: add,
        exclude: c.exclude.clone(),
    };
    let checksum = cairn_containerfile::context::checksum(ctx, &found, &opts)
        .map_err(|e| step_error(b.file(), inst, &e.to_string()))?;
    let single = found.len() == 1 && found[0].kind == SourceKind::File;
    Ok(Sources {
        checksum,
        single_file: single,
        from: From::Context(found, opts),
        chmod: None,
    })
}

/// Writes what `src` names as a tar (entries relative to the destination)
/// to `out`; an image source goes through an `out` child of a container of
/// that image.
fn write_sources(b: &Build<'_>, src: &Sources, out: &mut dyn Write) -> anyhow::Result<()> {
    match &src.from {
        From::Context(found, opts) => {
            cairn_containerfile::context::tar_sources(b.context(), found, opts, out)
                .map_err(|e| usage(e.to_string()))?;
        }
        From::Heredocs(files) => {
            let mut t = tar::Builder::new(out);
            let mtime = b
                .opts()
                .timestamp
                .map_or_else(now_secs, |t| u64::try_from(t).unwrap_or(0));
            for (name, text) in files {
                let mut h = tar::Header::new_gnu();
                h.set_uid(0);
                h.set_gid(0);
                h.set_size(text.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(mtime);
                h.set_entry_type(tar::EntryType::Regular);
                t.append_data(&mut h, name, text.as_bytes())
                    .context("write a heredoc into the step")?;
            }
            t.finish().context("write a heredoc into the step")?;
        }
        From::Image(image, paths) => {
            let c = create_for_build(b.ctx(), &quiet_container_args(&image.digest().to_string()))?;
            let result = (|| -> anyhow::Result<()> {
                let mut child = child(b.ctx(), "out", &c)?
                    .args(paths)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("start the copy-out child")?;
                let mut stdout = child.stdout.take().expect("piped");
                io::copy(&mut stdout, out).context("copy files out of the source image")?;
                let status = child.wait().context("wait for the copy-out child")?;
                if !status.success() {
                    return Err(usage(format!(
                        "reading {} from image {} failed",
                        paths.join(", "),
                        image.id()
                    )));
                }
                Ok(())
            })();
            let _ = remove_for_build(b.ctx(), &c);
            result?;
        }
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `create` arguments of a container that is never started (its root is
/// only mounted by a child).
fn quiet_container_args(image: &str) -> Vec<String> {
    [
        "--pull",
        "never",
        "--no-healthcheck",
        "--network",
        "none",
        "--entrypoint",
        "[\"/\"]",
        image,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn child(ctx: &Context, mode: &str, c: &Container) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("find the cairn executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(ctx.root())
        .arg("__build-copy")
        .arg(mode)
        .arg(&c.config.id);
    Ok(cmd)
}

/// COPY/ADD into a step container.
pub(crate) fn into_container(
    b: &Build<'_>,
    c: &Container,
    src: &Sources,
    dest: &str,
    workdir: &str,
    copy: &Copy,
) -> anyhow::Result<()> {
    let mut cmd = child(b.ctx(), "in", c)?;
    cmd.arg("--dest").arg(dest).arg("--workdir").arg(workdir);
    if src.single_file {
        cmd.arg("--file");
    }
    if matches!(src.from, From::Image(..)) {
        cmd.arg("--marker");
    }
    if let Some(o) = &copy.chown {
        cmd.arg("--chown").arg(o);
    }
    if let (Some(m), From::Image(..) | From::Heredocs(_)) = (&src.chmod, &src.from) {
        cmd.arg("--chmod").arg(m);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .context("start the copy-in child")?;
    let mut stdin = child.stdin.take().expect("piped");
    let wrote = write_sources(b, src, &mut stdin);
    drop(stdin);
    let status = child.wait().context("wait for the copy-in child")?;
    wrote?;
    if !status.success() {
        return Err(usage(format!(
            "writing into {dest} in the build container failed (see above)"
        )));
    }
    Ok(())
}

/// Where a COPY's files go in the image: the destination with symlinks
/// resolved inside the image, the directories to make on the way, and the
/// owner `--chown` names.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct DestPlan {
    /// The destination, resolved, relative to `/` (empty: `/`).
    pub rel: String,
    /// The one source file becomes `rel` itself.
    pub as_file: bool,
    /// Directories the layer makes (relative, parents first), and whether
    /// each takes the owner (the destination itself does).
    pub missing: Vec<(String, bool)>,
    pub owner: Option<(u64, u64)>,
}

/// A FROM scratch stage's destination: nothing exists, names are numbers.
pub(crate) fn scratch_dest(dest: &str, src: &Sources, copy: &Copy) -> anyhow::Result<DestPlan> {
    let owner = match &copy.chown {
        None => None,
        Some(o) => Some(numeric_owner(o).ok_or_else(|| {
            usage(format!(
                "--chown={o} in a FROM scratch stage: there is no /etc/passwd to resolve names; give numeric ids"
            ))
        })?),
    };
    let clean = super::stage::clean_path(dest);
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    let as_file = src.single_file && !dest.ends_with('/') && !parts.is_empty();
    let upto = if as_file {
        parts.len() - 1
    } else {
        parts.len()
    };
    let missing = (1..=upto)
        .map(|i| (parts[..i].join("/"), !as_file && i == upto))
        .collect();
    Ok(DestPlan {
        rel: parts.join("/"),
        as_file,
        missing,
        owner,
    })
}

/// What the `resolve` child answers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Resolved {
    /// The deepest existing ancestor of the destination, symlinks resolved.
    real: String,
    /// The components below it that do not exist.
    rest: Vec<String>,
    /// Whether `real` is a directory.
    is_dir: bool,
    /// The working directory's, the same way.
    workdir_real: String,
    workdir_rest: Vec<String>,
    owner: Option<(u32, u32)>,
}

/// The destination in `image`, asked of a child chrooted into its root.
pub(crate) fn resolve_dest(
    b: &Build<'_>,
    image: &Image,
    dest: &str,
    workdir: &str,
    src: &Sources,
    copy: &Copy,
) -> anyhow::Result<DestPlan> {
    let c = create_for_build(b.ctx(), &quiet_container_args(&image.digest().to_string()))?;
    let out = (|| -> anyhow::Result<std::process::Output> {
        let mut cmd = child(b.ctx(), "resolve", &c)?;
        cmd.arg("--dest").arg(dest).arg("--workdir").arg(workdir);
        if let Some(o) = &copy.chown {
            cmd.arg("--chown").arg(o);
        }
        cmd.stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("run the resolve child")
    })();
    let _ = remove_for_build(b.ctx(), &c);
    let out = out?;
    if !out.status.success() {
        return Err(usage(format!(
            "finding {dest} in the image failed (see above)"
        )));
    }
    let r: Resolved =
        serde_json::from_slice(&out.stdout).context("read what the resolve child found")?;
    let real = r.real.trim_matches('/').to_owned();
    let join = |base: &str, rest: &[String]| -> String {
        let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
        parts.extend(rest.iter().map(String::as_str));
        parts.join("/")
    };
    if !r.rest.is_empty() && !r.is_dir {
        return Err(usage(format!(
            "COPY to {dest}: /{real} is not a directory in the image"
        )));
    }
    let exists_dir = r.rest.is_empty() && r.is_dir;
    let as_file = src.single_file && !dest.ends_with('/') && !exists_dir;
    let mut missing = Vec::new();
    // buildah makes the working directory when it copies.
    for k in 1..=r.workdir_rest.len() {
        missing.push((join(&r.workdir_real, &r.workdir_rest[..k]), false));
    }
    let upto = if as_file {
        r.rest.len().saturating_sub(1)
    } else {
        r.rest.len()
    };
    for k in 1..=upto {
        let p = join(&real, &r.rest[..k]);
        if !missing.iter().any(|(m, _)| *m == p) {
            missing.push((p, !as_file && k == upto));
        }
    }
    Ok(DestPlan {
        rel: join(&real, &r.rest),
        as_file,
        missing,
        owner: r.owner.map(|(u, g)| (u64::from(u), u64::from(g))),
    })
}

/// A COPY's layer, written straight into the store: the sources' tar
/// (streamed from a thread) under the destination [`DestPlan`] says.
pub(crate) fn direct_layer(
    b: &Build<'_>,
    parent: Option<&Image>,
    config: Value,
    src: &Sources,
    plan: &DestPlan,
    created_by: &str,
) -> anyhow::Result<Made> {
    let chmod = match (&src.from, &src.chmod) {
        (From::Image(..) | From::Heredocs(_), Some(m)) => Some(parse_chmod(m)?),
        _ => None,
    };
    let mtime = b
        .opts()
        .timestamp
        .map_or_else(now_secs, |t| u64::try_from(t).unwrap_or(0));
    let img = NewImage {
        created_by: created_by.to_owned(),
        format: b.opts().format,
        timestamp: b.opts().timestamp,
        intermediate: true,
        ..NewImage::default()
    };
    let (reader, mut writer) = io::pipe().context("make a pipe")?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let r = write_sources(b, src, &mut writer);
            drop(writer);
            r
        });
        let made = commit::with_layer(
            b.store(),
            parent,
            config,
            |out| {
                prefix_tar(reader, out, plan, chmod, mtime)
                    .map_err(|e| io::Error::other(format!("{e:#}")))
            },
            &img,
        );
        let produced = producer.join().expect("the source writer does not panic");
        produced?;
        Ok(made?)
    })
}

fn numeric_owner(o: &str) -> Option<(u64, u64)> {
    let (u, g) = o.split_once(':').unwrap_or((o, o));
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// The entries of `input` (relative to the destination) under the
/// destination `plan` names, after the directories it makes.
fn prefix_tar(
    input: impl Read,
    out: &mut dyn Write,
    plan: &DestPlan,
    chmod: Option<u32>,
    mtime: u64,
) -> anyhow::Result<()> {
    let dest_rel = plan.rel.clone();
    let mut as_file = plan.as_file;
    let owner = plan.owner;
    let mut outb = tar::Builder::new(out);
    for (p, owned) in &plan.missing {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(mtime);
        h.set_size(0);
        if let (Some((u, g)), true) = (owner, *owned) {
            h.set_uid(u);
            h.set_gid(g);
        }
        outb.append_data(&mut h, format!("{p}/"), io::empty())?;
    }
    let mut written = std::collections::HashSet::new();
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().context("read the copied files")? {
        let mut entry = entry.context("read the copied files")?;
        let rel = entry.path()?.to_string_lossy().into_owned();
        if rel == MARKER {
            // `out`'s first entry: a source that was a directory after all
            // (`COPY --from=s /dir /new`) goes under `rel`, made here.
            let mut kind = String::new();
            entry.read_to_string(&mut kind)?;
            if kind == "dir" && as_file {
                as_file = false;
                let mut h = tar::Header::new_gnu();
                h.set_uid(owner.map_or(0, |o| o.0));
                h.set_gid(owner.map_or(0, |o| o.1));
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_mtime(mtime);
                h.set_size(0);
                outb.append_data(&mut h, format!("{dest_rel}/"), io::empty())?;
            }
            continue;
        }
        let rel = rel
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if rel == "." {
            continue;
        }
        let name = if as_file {
            dest_rel.clone()
        } else if dest_rel.is_empty() {
            rel.clone()
        } else {
            format!("{dest_rel}/{rel}")
        };
        if name.is_empty() {
            continue;
        }
        let mut h = entry.header().clone();
        if let Some((u, g)) = owner {
            h.set_uid(u);
            h.set_gid(g);
        }
        if let Some(m) = chmod {
            if !h.entry_type().is_symlink() {
                h.set_mode(m);
            }
        }
        match h.entry_type() {
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = target.trim_start_matches("./").trim_end_matches('/');
                let target = if dest_rel.is_empty() {
                    target.to_owned()
                } else {
                    format!("{dest_rel}/{target}")
                };
                // Only to a file this copy wrote: a link to anything else
                // (`/etc/shadow` of the image or the host) is refused.
                if !written.contains(&target) {
                    return Err(usage(format!(
                        "{name}: a hard link to {target}, which is not among the copied files"
                    )));
                }
                outb.append_link(&mut h, &name, &target)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                outb.append_link(&mut h, &name, &target)?;
            }
            _ => {
                outb.append_data(&mut h, &name, &mut entry)?;
            }
        }
        written.insert(name);
    }
    outb.into_inner()?.flush()?;
    Ok(())
}

/// `--squash-all`: the whole image as one layer.
pub(crate) fn squash_all(b: &Build<'_>, image: &Image) -> anyhow::Result<Image> {
    let c = create_for_build(b.ctx(), &quiet_container_args(&image.digest().to_string()))?;
    let img = NewImage {
        created_by: "/bin/sh -c #(nop) squashed".to_owned(),
        format: b.opts().format,
        timestamp: b.opts().timestamp,
        ..NewImage::default()
    };
    let made = commit::commit(
        b.store(),
        &c,
        &img,
        CommitOptions {
            squash: true,
            config: Some(image.config_raw.clone()),
            ..CommitOptions::default()
        },
    );
    let removed = remove_for_build(b.ctx(), &c);
    let made = made?;
    removed?;
    b.store()
        .image_by_manifest(&made.manifest)?
        .ok_or_else(|| usage("the squashed image vanished from the store"))
}

/// One-layer mode: the changes of `prev` (the stage's working container)
/// become `next`'s upper directory.
pub(crate) fn carry_upper(prev: &Container, next: &Container) -> anyhow::Result<()> {
    let from = prev.dir.join("upper");
    let to = next.dir.join("upper");
    fs::remove_dir(&to).with_context(|| format!("remove the new {}", to.display()))?;
    fs::rename(&from, &to)
        .with_context(|| format!("move {} to {}", from.display(), to.display()))?;
    // The old container is removed next: it needs an upper to remove.
    fs::create_dir(&from).with_context(|| format!("recreate {}", from.display()))?;
    Ok(())
}

/// RUN's `--mount`s as `create` flags, and what of them goes into the
/// cache key.
pub(crate) struct MountPlan {
    pub flags: Vec<String>,
    pub key: String,
    /// Directories bound by the flags, removed when the plan is dropped.
    pub scratch: Vec<tempfile::TempDir>,
}

pub(crate) fn run_mounts(
    b: &Build<'_>,
    inst: &Instruction,
    mounts: &[String],
) -> anyhow::Result<MountPlan> {
    let mut plan = MountPlan {
        flags: Vec::new(),
        key: String::new(),
        scratch: Vec::new(),
    };
    for spec in mounts {
        let mut kind = "bind".to_owned();
        let mut fields: Vec<(String, String)> = Vec::new();
        for kv in spec.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
            if k == "type" {
                kind = v.to_owned();
            } else {
                fields.push((k.to_owned(), v.to_owned()));
            }
        }
        let m = MountSpec {
            spec,
            fields,
            inst,
            file: b.file(),
        };
        match kind.as_str() {
            "bind" => bind_mount(b, &m, &mut plan)?,
            "cache" => cache_mount(b, &m, &mut plan)?,
            "tmpfs" => {
                let target = m.target()?;
                plan.key.push_str(&format!("tmpfs:{target}\n"));
                plan.flags.push("--mount".into());
                let mut f = format!("type=tmpfs,destination={target}");
                if let Some(s) = m.get(&["size"]) {
                    f.push_str(&format!(",tmpfs-size={s}"));
                }
                plan.flags.push(f);
            }
            "secret" => secret_mount(b, &m, &mut plan)?,
            other => {
                return Err(step_error(
                    b.file(),
                    inst,
                    &format!("--mount={spec}: type={other} is not supported (bind, cache, tmpfs and secret are)"),
                ))
            }
        }
    }
    Ok(plan)
}

/// One `RUN --mount=` value, split.
struct MountSpec<'a> {
    spec: &'a str,
    fields: Vec<(String, String)>,
    inst: &'a Instruction,
    file: &'a str,
}

impl MountSpec<'_> {
    fn get(&self, keys: &[&str]) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| keys.contains(&n.as_str()))
            .map(|(_, v)| v.clone())
    }

    fn target(&self) -> anyhow::Result<String> {
        self.get(&["target", "dst", "destination"]).ok_or_else(|| {
            step_error(
                self.file,
                self.inst,
                &format!("--mount={}: target= is required", self.spec),
            )
        })
    }

    fn error(&self, msg: &str) -> anyhow::Error {
        step_error(
            self.file,
            self.inst,
            &format!("--mount={}: {msg}", self.spec),
        )
    }
}

/// A bind of a context path, read-only; its content is in the cache key.
fn bind_mount(b: &Build<'_>, m: &MountSpec<'_>, plan: &mut MountPlan) -> anyhow::Result<()> {
    if m.get(&["from"]).is_some() {
        return Err(m.error(
            "binds from another stage or image are not supported yet: COPY --from the files instead",
        ));
    }
    if m.get(&["rw", "readwrite"]).is_some_and(|v| v == "true") {
        return Err(
            m.error("cairn binds the build context read-only (a rw bind would write into it)")
        );
    }
    let target = m.target()?;
    let source = m.get(&["source", "src"]).unwrap_or_else(|| ".".into());
    let found = b
        .context()
        .sources(std::slice::from_ref(&source))
        .map_err(|e| step_error(m.file, m.inst, &e.to_string()))?;
    let one = found
        .first()
        .ok_or_else(|| m.error(&format!("{source} is not in the context")))?;
    let sum = cairn_containerfile::context::checksum(b.context(), &found, &TarOptions::default())
        .map_err(|e| step_error(m.file, m.inst, &e.to_string()))?;
    plan.key.push_str(&format!("bind:{target}:{sum}\n"));
    let mut host = b.context().root().join(&one.path);
    if one.kind == SourceKind::Dir && !b.context().ignore().is_empty() {
        // What the build sees of the directory, copied out: the host's
        // would show the files .containerignore excludes (an untracked
        // .env read into a layer).
        let tmp = b.store().root().join("tmp");
        let dir = tempfile::Builder::new()
            .prefix("build-bind-")
            .tempdir_in(&tmp)
            .context("make a directory for a bind of the context")?;
        let mut tar = tempfile::tempfile_in(&tmp).context("make a temporary file for a bind")?;
        let opts = TarOptions::default();
        cairn_containerfile::context::tar_sources(
            b.context(),
            std::slice::from_ref(one),
            &opts,
            &mut tar,
        )
        .map_err(|e| step_error(m.file, m.inst, &e.to_string()))?;
        tar.seek(io::SeekFrom::Start(0))?;
        cairn_containerfile::context::Context::from_tar(tar, dir.path(), false)
            .map_err(|e| step_error(m.file, m.inst, &e.to_string()))?;
        host = dir.path().to_owned();
        plan.scratch.push(dir);
    }
    // The bind goes to `create` as one comma-separated option list: a
    // comma in the path would add options of the context's choosing (a
    // directory named `d,source=..` binds the caller's parent directory).
    if host.as_os_str().as_encoded_bytes().contains(&b',') {
        return Err(m.error(&format!(
            "{} holds a comma, which a bind source cannot: rename it",
            host.display()
        )));
    }
    plan.flags.push("--mount".into());
    plan.flags.push(format!(
        "type=bind,source={},destination={target},ro",
        host.display()
    ));
    Ok(())
}

/// A cache directory of the store's, kept across builds (by `id`, else
/// the target); not in the cache key, as BuildKit's.
fn cache_mount(b: &Build<'_>, m: &MountSpec<'_>, plan: &mut MountPlan) -> anyhow::Result<()> {
    let target = m.target()?;
    let id = m.get(&["id"]).unwrap_or_else(|| target.clone());
    let dir = b
        .ctx()
        .root()
        .join("build-cache-mounts")
        .join(&hex::encode(Sha256::digest(id.as_bytes()))[..32]);
    if !dir.exists() {
        fs::create_dir_all(&dir)
            .with_context(|| format!("create the cache mount {}", dir.display()))?;
        let num = |k: &str| m.get(&[k]).and_then(|v| v.parse::<u32>().ok());
        if num("uid").is_some() || num("gid").is_some() {
            nix::unistd::chown(
                &dir,
                num("uid").map(nix::unistd::Uid::from_raw),
                num("gid").map(nix::unistd::Gid::from_raw),
            )
            .with_context(|| format!("chown {}", dir.display()))?;
        }
        if let Some(mode) = m.get(&["mode"]) {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&dir, fs::Permissions::from_mode(parse_chmod(&mode)?))?;
        }
    }
    plan.key.push_str(&format!("cache:{id}:{target}\n"));
    let ro = m.get(&["ro", "readonly"]).is_some_and(|v| v == "true");
    plan.flags.push("--mount".into());
    plan.flags.push(format!(
        "type=bind,source={},destination={target}{}",
        dir.display(),
        if ro { ",ro" } else { "" }
    ));
    Ok(())
}

/// A `--secret` file, read-only, for this step only; never in the key.
fn secret_mount(b: &Build<'_>, m: &MountSpec<'_>, plan: &mut MountPlan) -> anyhow::Result<()> {
    let target = m.get(&["target", "dst", "destination"]);
    let id = m.get(&["id"]).or_else(|| {
        target
            .as_deref()
            .and_then(|t| t.rsplit('/').next())
            .map(str::to_owned)
    });
    let Some(id) = id else {
        return Err(m.error("id= is required"));
    };
    let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
    let required = m.get(&["required"]).is_some_and(|v| v == "true");
    match b.opts().secrets.get(&id) {
        Some(src) => {
            plan.key.push_str(&format!("secret:{id}:{target}\n"));
            plan.flags.push("--mount".into());
            plan.flags.push(format!(
                "type=bind,source={},destination={target},ro",
                src.display()
            ));
        }
        None if required => {
            return Err(step_error(
                m.file,
                m.inst,
                &format!("secret {id} is required: give it with --secret id={id},src=FILE"),
            ))
        }
        None => {}
    }
    Ok(())
}

/// `__build-copy`: in the container's root (mounted in a mount namespace
/// of our own, chrooted into), writes the tar on stdin under `dest`, or
/// writes `paths` as a tar on stdout.
pub fn child_main(ctx: &Context, a: BuildCopyArgs) -> anyhow::Result<u8> {
    let c = Containers::new(ctx.root()).find(&a.id)?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(cairn_engine::userns::reenter(ctx.root())?);
    }
    let root = crate::cmd::cp::mount_stopped(&c)?;
    nix::unistd::chroot(&root).with_context(|| format!("chroot into {}", root.display()))?;
    std::env::set_current_dir("/").context("chdir / in the container")?;
    match a.mode.as_str() {
        "in" => copy_in(&a),
        "out" => copy_out(&a.paths),
        "resolve" => resolve_in_root(&a),
        m => Err(usage(format!("unknown build copy mode {m}"))),
    }
}

fn copy_in(a: &BuildCopyArgs) -> anyhow::Result<u8> {
    let dest_s = a.dest.clone().unwrap_or_else(|| "/".into());
    let dest = Path::new(&dest_s);
    let owner = a.chown.as_deref().map(crate::cmd::cp::container_user);
    let chmod = a.chmod.as_deref().map(parse_chmod).transpose()?;
    let mut ar = tar::Archive::new(io::BufReader::new(io::stdin().lock()));
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    if let Some(w) = &a.workdir {
        fs::create_dir_all(w).with_context(|| format!("create the working directory {w}"))?;
    }
    let mut single = a.file;
    let is_dir = fs::metadata(dest).is_ok_and(|m| m.is_dir());
    let existed = fs::symlink_metadata(dest).is_ok();
    let mut dirs = Vec::new();
    let mut first = true;
    for entry in ar.entries().context("read the copied files")? {
        let mut entry = entry.context("read the copied files")?;
        let rel = entry.path().context("entry path")?.into_owned();
        if a.marker && first {
            first = false;
            if rel.as_os_str() == MARKER {
                let mut kind = String::new();
                entry.read_to_string(&mut kind)?;
                single = single && kind == "file";
                continue;
            }
        }
        first = false;
        let target: PathBuf = if single && !is_dir && !dest_s.ends_with('/') {
            if let Some(p) = dest.parent() {
                fs::create_dir_all(p)
                    .with_context(|| format!("create {} in the container", p.display()))?;
            }
            entry
                .unpack(dest)
                .with_context(|| format!("write {} in the container", dest.display()))?;
            dest.to_owned()
        } else {
            if !existed {
                fs::create_dir_all(dest)
                    .with_context(|| format!("create {} in the container", dest.display()))?;
                if let Some((uid, gid)) = owner {
                    // The destination a COPY --chown makes is that user's too.
                    crate::cmd::cp::lchown(dest, uid, gid)?;
                }
            }
            let clean: PathBuf = rel
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            if clean.as_os_str().is_empty() {
                continue;
            }
            entry.unpack_in(dest).with_context(|| {
                format!("write {} in the container", dest.join(&clean).display())
            })?;
            dest.join(clean)
        };
        if entry.header().entry_type().is_dir() {
            dirs.push((target.clone(), entry.header().mtime().ok()));
        }
        let is_link = entry.header().entry_type().is_symlink();
        if let Some(m) = chmod.filter(|_| !is_link) {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&target, fs::Permissions::from_mode(m))
                .with_context(|| format!("chmod {}", target.display()))?;
        }
        if let Some((uid, gid)) = owner {
            crate::cmd::cp::lchown(&target, uid, gid)?;
        }
    }
    for (path, mtime) in dirs.iter().rev() {
        if let Some(t) = mtime {
            crate::cmd::cp::set_dir_mtime(path, *t)
                .with_context(|| format!("set the mtime of {} in the container", path.display()))?;
        }
    }
    Ok(0)
}

/// `resolve`: where `--dest` and `--workdir` are in this (chrooted) root,
/// and the ids `--chown` names, as JSON on stdout.
fn resolve_in_root(a: &BuildCopyArgs) -> anyhow::Result<u8> {
    /// `p` resolved component by component in this root: symlinks
    /// followed (a dangling one too, to where it points, as BuildKit
    /// makes the directories a COPY names through it), up to the first
    /// component that does not exist. Returns that existing path, the
    /// components below it, and whether it is a directory.
    fn split(p: &str) -> anyhow::Result<(String, Vec<String>, bool)> {
        fn parts(s: &str) -> impl Iterator<Item = String> + '_ {
            s.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_owned)
        }
        let mut todo: std::collections::VecDeque<String> = parts(p).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let path = format!("/{}/{c}", cur.join("/"));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(usage(format!(
                            "{p}: too many levels of symbolic links in the image"
                        )));
                    }
                    let target = fs::read_link(&path)
                        .with_context(|| format!("read the link {path} in the image"))?;
                    let t = target.to_string_lossy();
                    if t.starts_with('/') {
                        cur.clear();
                    }
                    let mut next: std::collections::VecDeque<String> = parts(&t).collect();
                    next.extend(todo.drain(..));
                    todo = next;
                }
                Ok(m) => {
                    cur.push(c);
                    if !m.is_dir() && !todo.is_empty() {
                        // A file in the middle: the caller says so.
                        return Ok((format!("/{}", cur.join("/")), todo.into(), false));
                    }
                }
                Err(_) => {
                    // Missing from here on: the rest, `..` applied.
                    let mut rest = vec![c];
                    for r in todo {
                        if r == ".." {
                            if rest.pop().is_none() {
                                cur.pop();
                            }
                        } else {
                            rest.push(r);
                        }
                    }
                    return Ok((format!("/{}", cur.join("/")), rest, true));
                }
            }
        }
        let real = format!("/{}", cur.join("/"));
        let is_dir = fs::metadata(&real).is_ok_and(|m| m.is_dir());
        Ok((real, Vec::new(), is_dir))
    }
    let (real, rest, is_dir) = split(a.dest.as_deref().unwrap_or("/"))?;
    let (workdir_real, workdir_rest, _) = split(a.workdir.as_deref().unwrap_or("/"))?;
    let owner = a.chown.as_deref().map(crate::cmd::cp::container_user);
    let r = Resolved {
        real,
        rest,
        is_dir,
        workdir_real,
        workdir_rest,
        owner,
    };
    println!("{}", serde_json::to_string(&r).context("write JSON")?);
    Ok(0)
}

fn copy_out(paths: &[String]) -> anyhow::Result<u8> {
    let mut b = tar::Builder::new(io::BufWriter::new(io::stdout().lock()));
    b.follow_symlinks(false);
    let mut expanded = Vec::new();
    for p in paths {
        expanded.extend(glob_in_root(p)?);
    }
    let single = expanded.len() == 1 && fs::metadata(&expanded[0]).is_ok_and(|m| !m.is_dir());
    let kind = if single { "file" } else { "dir" };
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(kind.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, MARKER, kind.as_bytes())?;
    for p in &expanded {
        let meta = fs::metadata(p)
            .map_err(|e| usage(format!("{}: {e} (in the source image)", p.display())))?;
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            for n in names {
                let full = p.join(&n);
                let m = fs::symlink_metadata(&full)?;
                if m.is_dir() {
                    b.append_dir_all(&n, &full)?;
                } else if m.is_file() || m.is_symlink() {
                    b.append_path_with_name(&full, &n)?;
                } else {
                    special(&mut b, Path::new(&n), &m)?;
                }
            }
        } else if !meta.is_file() {
            // A FIFO (or a node) is copied as one, never opened: a FIFO
            // with no writer would block the build forever.
            let name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
            special(&mut b, Path::new(&name), &meta)?;
        } else {
            let name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let mut f = fs::File::open(p)?;
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_metadata(&meta);
            b.append_data(&mut h, name, &mut f)?;
        }
    }
    b.into_inner()?.flush()?;
    Ok(0)
}

/// A FIFO or device node's tar entry, from its metadata (nothing opened).
fn special(b: &mut tar::Builder<impl Write>, name: &Path, meta: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let mut h = tar::Header::new_gnu();
    h.set_metadata(meta);
    h.set_size(0);
    let rdev = meta.rdev();
    h.set_device_major((((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)) as u32)?;
    h.set_device_minor((((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32)?;
    b.append_data(&mut h, name, io::empty())
}

/// A source path in the (chrooted) root, with `*`, `?` and `[...]` in its
/// last element matched against that directory.
fn glob_in_root(p: &str) -> anyhow::Result<Vec<PathBuf>> {
    let path = Path::new("/").join(p.trim_start_matches('/'));
    let last = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !last.contains(['*', '?', '[']) {
        if fs::symlink_metadata(&path).is_err() {
            return Err(usage(format!(
                "{p}: no such file or directory in the source image"
            )));
        }
        return Ok(vec![path]);
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let glob = cairn_containerfile::ignore::ElementGlob::new(&last)
        .map_err(|why| usage(format!("{p}: bad pattern {last:?}: {why}")))?;
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if glob.matches(&name) {
            out.push(dir.join(name));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(usage(format!("{p}: no file matches in the source image")));
    }
    Ok(out)
}
