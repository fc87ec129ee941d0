//! `cairn build` (also `image build` and `buildx build`): a Containerfile
//! into an image, on cairn's own parts. Each instruction becomes an image,
//! as podman's do: `RUN` runs in a container of the step before and its
//! changes are committed as a layer (the commit path of `cairn commit`);
//! `COPY`/`ADD` write the build context's files (read once, checksummed)
//! into such a container through a child chrooted into its root, so a
//! symlink in the image never leads out of it; the other instructions
//! change only the config. Step images are cached by a key chained from the
//! base image, each instruction with its expanded arguments, and the
//! checksum of the files it reads: a rebuild with nothing changed runs no
//! step.

mod copy;
mod stage;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cairn_containerfile::context::Context as BuildContext;
use cairn_containerfile::ignore::Ignore;
use cairn_containerfile::parse::{Containerfile, Op};
use cairn_store::Reference;
use clap::Args;

use crate::context::Context;
use crate::exit;

pub use copy::{child_main as copy_child_main, BuildCopyArgs};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    exit::with_code(exit::ENGINE, msg)
}

/// `build` flags.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)]
pub struct BuildArgs {
    /// The build context: a directory, or `-` for a tar archive (or a lone Containerfile) on stdin.
    #[arg(value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Name the built image (repeatable).
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// The Containerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short, long = "file", value_name = "FILE")]
    pub files: Vec<String>,
    /// A build argument: NAME=VALUE, or NAME to take ours.
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Do not use cached step images.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base images: always, missing (default), never, newer; without a value always.
    #[arg(long, value_name = "POLICY", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub pull: Option<String>,
    /// Same as --pull=always.
    #[arg(long)]
    pub pull_always: bool,
    /// Same as --pull=never.
    #[arg(long)]
    pub pull_never: bool,
    /// Cache an image per step (true); false: one layer per stage, no cache.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub layers: bool,
    /// Squash the layers the build adds into one, on the base image's.
    #[arg(long)]
    pub squash: bool,
    /// Squash the whole image, base included, into one layer.
    #[arg(long)]
    pub squash_all: bool,
    /// Build up to this stage (by name) and name that image.
    #[arg(long)]
    pub target: Option<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Add a label to the image (KEY=VALUE, repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Add an annotation to the image's manifest (KEY=VALUE, repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Set an environment variable in the image (KEY=VALUE, repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Image format: oci (default) or docker.
    #[arg(long, default_value = "oci")]
    pub format: String,
    /// Seconds since the epoch for the image's created times and the files' latest mtime (SOURCE_DATE_EPOCH too).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Network of RUN steps: host, none, or the default (private, as `run`).
    #[arg(long)]
    pub network: Option<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH (env= is refused).
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    pub secrets: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove step containers after each step (always true for cairn).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub rm: bool,
    /// Remove step containers even when the build fails (always true for cairn).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub force_rm: bool,
    /// Platform of the base images (OS/ARCH[/VARIANT]); only this host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Use this .containerignore/.dockerignore instead of the context's.
    #[arg(long, value_name = "FILE")]
    pub ignorefile: Option<PathBuf>,
    /// Verify TLS for pulls of base images.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub tls_verify: bool,
    /// Registry credentials file for pulls of base images.
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Accepted for podman compatibility: stages run one after another.
    #[arg(long)]
    pub jobs: Option<u32>,
    /// RUN steps: add a host name to /etc/hosts (HOST:IP, repeatable).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// RUN steps: add a capability (repeatable).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// RUN steps: drop a capability (repeatable).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// RUN steps: DNS server (repeatable).
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// RUN steps: DNS option (repeatable).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// RUN steps: DNS search domain (repeatable).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// RUN steps: security options, as `run --security-opt` (repeatable).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// RUN steps: size of /dev/shm.
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// RUN steps: resource limits, as `run --ulimit` (repeatable).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// RUN steps: bind mounts, as `run -v` (repeatable; not in the image).
    #[arg(short = 'v', long = "volume", value_name = "SRC:DEST[:OPTS]")]
    pub volumes: Vec<String>,
    /// RUN steps: host devices, as `run --device` (repeatable).
    #[arg(long, value_name = "HOST[:CONTAINER][:PERMS]")]
    pub device: Vec<String>,
    /// RUN steps: do not write /etc/hosts.
    #[arg(long)]
    pub no_hosts: bool,
    /// Remove an environment variable from the image (repeatable).
    #[arg(long, value_name = "NAME")]
    pub unsetenv: Vec<String>,
    /// The image the first stage starts from, instead of its FROM.
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,
    /// Leave the image's history empty.
    #[arg(long)]
    pub omit_history: bool,
    /// Build only the stages the target needs (cairn always does; false builds all).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub skip_unused_stages: bool,
    /// Layers are stored uncompressed (as podman's default); accepted.
    #[arg(short = 'D', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub disable_compression: bool,
    /// Registry credentials (USER[:PASSWORD]) for pulls of base images.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Certificates directory for pulls of base images.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Pull retries of base images.
    #[arg(long)]
    pub retry: Option<u32>,
    /// Delay between pull retries of base images.
    #[arg(long = "retry-delay")]
    pub retry_delay: Option<String>,
    /// Base images' OS (only this host's).
    #[arg(long)]
    pub os: Option<String>,
    /// Base images' architecture (only this host's).
    #[arg(long)]
    pub arch: Option<String>,
    /// Base images' variant (only this host's).
    #[arg(long)]
    pub variant: Option<String>,
    /// Refused: cairn has no remote build cache.
    #[arg(long = "cache-from", hide = true)]
    pub cache_from: Vec<String>,
    /// Refused: cairn has no remote build cache.
    #[arg(long = "cache-to", hide = true)]
    pub cache_to: Vec<String>,
    /// Refused: manifest lists are not built.
    #[arg(long, hide = true)]
    pub manifest: Option<String>,
    /// Refused: RUN steps always run in a container (oci isolation).
    #[arg(long, hide = true)]
    pub isolation: Option<String>,
    /// Refused: no SSH agent forwarding.
    #[arg(long, hide = true)]
    pub ssh: Vec<String>,
    /// Refused: builds run for this host's platform only.
    #[arg(long = "all-platforms", hide = true)]
    pub all_platforms: bool,
}

/// What every stage reads of the flags.
#[derive(Debug)]
pub(crate) struct Options {
    pub tags: Vec<Reference>,
    /// `create` flags every RUN step's container gets.
    pub run_flags: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub unsetenv: Vec<String>,
    pub from: Option<String>,
    pub omit_history: bool,
    pub all_stages: bool,
    pub creds: Option<String>,
    pub cert_dir: Option<PathBuf>,
    pub retry: Option<u32>,
    pub retry_delay: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: String,
    pub layers: bool,
    pub format: cairn_engine::commit::Format,
    pub timestamp: Option<i64>,
    pub network: Option<String>,
    pub secrets: BTreeMap<String, PathBuf>,
    pub quiet: bool,
    pub tls_verify: bool,
    pub authfile: Option<PathBuf>,
}

fn refuse(a: &BuildArgs) -> anyhow::Result<()> {
    let refused = [
        (
            !a.cache_from.is_empty(),
            "--cache-from",
            "no remote build cache",
        ),
        (
            !a.cache_to.is_empty(),
            "--cache-to",
            "no remote build cache",
        ),
        (
            a.manifest.is_some(),
            "--manifest",
            "manifest lists are not built",
        ),
        (
            a.isolation.as_deref().is_some_and(|i| i != "oci"),
            "--isolation",
            "RUN steps always run in a container",
        ),
        (!a.ssh.is_empty(), "--ssh", "no SSH agent forwarding"),
        (
            a.all_platforms,
            "--all-platforms",
            "builds are for this host's platform only",
        ),
    ];
    for (given, flag, why) in refused {
        if given {
            return Err(usage(format!("cairn does not support {flag} ({why})")));
        }
    }
    let host = cairn_store::media::host_platform();
    for (flag, given, want) in [
        ("--os", &a.os, host.os.clone()),
        ("--arch", &a.arch, host.architecture.clone()),
    ] {
        if let Some(g) = given.as_ref().filter(|g| **g != want) {
            return Err(usage(format!(
                "{flag} {g}: cairn builds for this host's platform ({want}) only"
            )));
        }
    }
    if let Some(p) = &a.platform {
        let host = cairn_store::media::host_platform();
        let want = format!("{}/{}", host.os, host.architecture);
        if p != &want && !p.starts_with(&format!("{want}/")) {
            return Err(usage(format!(
                "--platform {p}: cairn builds for this host's platform ({want}) only"
            )));
        }
    }
    Ok(())
}

fn options(a: &BuildArgs) -> anyhow::Result<Options> {
    let format = match a.format.as_str() {
        "oci" => cairn_engine::commit::Format::Oci,
        "docker" | "v2s2" => cairn_engine::commit::Format::Docker,
        f => return Err(usage(format!("invalid --format {f:?}: use oci or docker"))),
    };
    let pull = match (&a.pull, a.pull_always, a.pull_never) {
        (_, true, _) => "always".to_owned(),
        (_, _, true) => "never".to_owned(),
        (Some(p), _, _) => match p.as_str() {
            "true" => "always".to_owned(),
            "false" => "missing".to_owned(),
            "always" | "missing" | "never" | "newer" | "ifmissing" | "ifnewer" => {
                p.replace("if", "")
            }
            other => {
                return Err(usage(format!(
                    "invalid --pull {other:?}: use always, missing, never or newer"
                )))
            }
        },
        (None, _, _) => "missing".to_owned(),
    };
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.extend(super::commit::image_name(Some(t))?);
    }
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_owned(), v.to_owned());
            }
            None => {
                // podman: NAME alone takes our environment's value, if any.
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let mut secrets = BTreeMap::new();
    for s in &a.secrets {
        let (id, src) = parse_secret(s)?;
        secrets.insert(id, src);
    }
    for l in a.labels.iter().chain(&a.env) {
        if !l.contains('=') && a.labels.contains(l) {
            return Err(usage(format!("invalid --label {l:?}: use KEY=VALUE")));
        }
    }
    let mut run_flags = Vec::new();
    let pass: [(&str, &Vec<String>); 10] = [
        ("--add-host", &a.add_host),
        ("--cap-add", &a.cap_add),
        ("--cap-drop", &a.cap_drop),
        ("--dns", &a.dns),
        ("--dns-option", &a.dns_option),
        ("--dns-search", &a.dns_search),
        ("--security-opt", &a.security_opt),
        ("--ulimit", &a.ulimit),
        ("--volume", &a.volumes),
        ("--device", &a.device),
    ];
    for (flag, values) in pass {
        for v in values {
            run_flags.push(flag.to_owned());
            run_flags.push(v.clone());
        }
    }
    if let Some(s) = &a.shm_size {
        run_flags.extend(["--shm-size".to_owned(), s.clone()]);
    }
    if a.no_hosts {
        run_flags.push("--no-hosts".to_owned());
    }
    let mut annotations = BTreeMap::new();
    for an in &a.annotations {
        let (k, v) = an
            .split_once('=')
            .ok_or_else(|| usage(format!("invalid --annotation {an:?}: use KEY=VALUE")))?;
        annotations.insert(k.to_owned(), v.to_owned());
    }
    Ok(Options {
        tags,
        run_flags,
        annotations,
        unsetenv: a.unsetenv.clone(),
        from: a.from.clone(),
        omit_history: a.omit_history,
        all_stages: !a.skip_unused_stages,
        creds: a.creds.clone(),
        cert_dir: a.cert_dir.clone(),
        retry: a.retry,
        retry_delay: a.retry_delay.clone(),
        build_args,
        no_cache: a.no_cache || !a.layers,
        pull,
        layers: a.layers,
        format,
        timestamp: super::commit::timestamp(a.timestamp)?,
        network: a.network.clone(),
        secrets,
        quiet: a.quiet,
        tls_verify: a.tls_verify,
        authfile: a
            .authfile
            .clone()
            .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from)),
    })
}

/// `--secret id=ID,src=PATH` (`type=file` accepted; `env=VAR` refused).
fn parse_secret(s: &str) -> anyhow::Result<(String, PathBuf)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_owned()),
            Some(("type", "file" | "env")) => {}
            _ => return Err(usage(format!("invalid --secret {s:?}: use id=ID,src=PATH"))),
        }
    }
    let id = id.ok_or_else(|| usage(format!("invalid --secret {s:?}: id=ID is missing")))?;
    if id.is_empty() || id.contains('/') {
        return Err(usage(format!(
            "invalid --secret {s:?}: the id must be a non-empty name without /"
        )));
    }
    let src = match (src, env) {
        (Some(p), _) => {
            std::fs::metadata(&p)
                .map_err(|e| usage(format!("--secret {s:?}: {}: {e}", p.display())))?;
            std::fs::canonicalize(&p)
                .map_err(|e| usage(format!("--secret {s:?}: {}: {e}", p.display())))?
        }
        (None, Some(_)) => {
            return Err(usage(format!(
                "--secret {s:?}: cairn does not support secrets from the environment yet: write it to a file and give src=FILE"
            )))
        }
        (None, None) => {
            return Err(usage(format!("invalid --secret {s:?}: give src=PATH")))
        }
    };
    Ok((id, src))
}

/// Where the Containerfile and the context come from.
struct Inputs {
    text: String,
    file: String,
    context: BuildContext,
    /// A context unpacked from stdin, removed at the end.
    _scratch: Option<tempfile::TempDir>,
}

/// The largest Containerfile read (from a file or stdin): its text is
/// held whole, so an endless input must stop somewhere.
const MAX_CONTAINERFILE: u64 = 64 << 20;

/// A Containerfile's text from `r` (`what` names it), at most
/// [`MAX_CONTAINERFILE`] bytes.
fn read_text(r: impl std::io::Read, what: &str) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    r.take(MAX_CONTAINERFILE + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("read {what}"))?;
    if buf.len() as u64 > MAX_CONTAINERFILE {
        return Err(usage(format!(
            "{what} is larger than {} MiB: a Containerfile that size is not read; give a smaller one (a tar context goes on stdin as an archive)",
            MAX_CONTAINERFILE >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| usage(format!("{what} is not UTF-8 text")))
}

fn read_stdin() -> anyhow::Result<String> {
    read_text(std::io::stdin().lock(), "the Containerfile on stdin")
}

/// A Containerfile's text from a file.
fn read_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let f = std::fs::File::open(path)
        .map_err(|e| usage(format!("read {what} {}: {e}", path.display())))?;
    read_text(f, &format!("{what} {}", path.display()))
}

/// Whether `head` starts a tar archive, plain or compressed.
fn looks_like_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.get(257..262) == Some(b"ustar")
}

fn inputs(a: &BuildArgs, scratch_root: &Path) -> anyhow::Result<Inputs> {
    if a.files.len() > 1 {
        return Err(usage(
            "several -f files are not supported: give one Containerfile",
        ));
    }
    let file_flag = a.files.first().map(String::as_str);
    let ctx_arg = a.context.as_deref().unwrap_or(".");
    let mut scratch = None;
    let mut stdin_text = None;
    let context_dir: PathBuf = if ctx_arg == "-" {
        // Only the head is buffered: a tar context is unpacked as it
        // streams in, a Containerfile's text is capped.
        let mut stdin = std::io::stdin().lock();
        let mut head = Vec::with_capacity(512);
        (&mut stdin)
            .take(512)
            .read_to_end(&mut head)
            .context("read the build input from stdin")?;
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(scratch_root)
            .with_context(|| format!("make a context directory in {}", scratch_root.display()))?;
        if looks_like_archive(&head) {
            let input = head.as_slice().chain(stdin);
            let ctx = BuildContext::from_tar(input, dir.path(), a.ignorefile.is_none())
                .map_err(|e| usage(format!("build context from stdin: {e}")))?;
            let path = ctx.root().to_owned();
            drop(ctx);
            scratch = Some(dir);
            path
        } else {
            // A Containerfile alone: an empty context.
            stdin_text = Some(read_text(
                head.as_slice().chain(stdin),
                "the Containerfile on stdin",
            )?);
            let path = dir.path().to_owned();
            scratch = Some(dir);
            path
        }
    } else {
        let p = PathBuf::from(ctx_arg);
        if !p.is_dir() {
            return Err(usage(format!(
                "build context {ctx_arg}: not a directory (give a directory, or - for a tar on stdin)"
            )));
        }
        p
    };
    let (text, file, file_path) = match (file_flag, stdin_text) {
        (Some("-"), _) => {
            if ctx_arg == "-" {
                return Err(usage("-f - and a context on stdin cannot both read stdin"));
            }
            (read_stdin()?, "-".to_owned(), None)
        }
        (None, Some(t)) => (t, "-".to_owned(), None),
        (Some(f), _) => {
            // podman: relative to the current directory, else the context.
            let mut path = PathBuf::from(f);
            if !path.exists() && path.is_relative() {
                path = context_dir.join(f);
            }
            let t = read_file(&path, "the Containerfile")?;
            (t, f.to_owned(), Some(path))
        }
        (None, None) => {
            let found = ["Containerfile", "Dockerfile"]
                .iter()
                .map(|n| context_dir.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    usage(format!(
                        "no Containerfile or Dockerfile in {}: give one with -f",
                        context_dir.display()
                    ))
                })?;
            // The context's own Containerfile may be a symlink, but not
            // out of the context: its text is shown in errors and kept in
            // the image's history (`Containerfile -> /etc/shadow` printed
            // root's hash). -f names an outside file on purpose.
            let inside = std::fs::canonicalize(&found)
                .ok()
                .zip(std::fs::canonicalize(&context_dir).ok())
                .is_some_and(|(f, root)| f.starts_with(root));
            if !inside {
                return Err(usage(format!(
                    "{} leads out of the build context: give the file with -f if it is meant",
                    found.display()
                )));
            }
            let t = read_file(&found, "the Containerfile")?;
            let name = found
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (t, name, Some(found))
        }
    };
    let ignore = match &a.ignorefile {
        Some(f) => {
            let t = std::fs::read_to_string(f)
                .map_err(|e| usage(format!("read --ignorefile {}: {e}", f.display())))?;
            Ignore::parse(&t).map_err(|e| usage(format!("--ignorefile {}: {e}", f.display())))?
        }
        None => Ignore::read_for(&context_dir, file_path.as_deref())
            .map_err(|e| usage(e.to_string()))?,
    };
    let context = BuildContext::open(&context_dir, ignore).map_err(|e| usage(e.to_string()))?;
    Ok(Inputs {
        text,
        file,
        context,
        _scratch: scratch,
    })
}

/// The stages the target needs: itself and every stage it names in
/// `FROM`, `COPY --from` or `RUN --mount=from=`, transitively. Names are
/// expanded with the global `ARG`s (`FROM $BASE`, as the Dev Containers
/// CLI writes).
fn needed_stages(
    cf: &Containerfile,
    target: usize,
    expand: &dyn Fn(&str) -> String,
) -> BTreeSet<usize> {
    let index_of = |name: &str| -> Option<usize> {
        let lower = expand(name).to_ascii_lowercase();
        cf.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| lower.parse::<usize>().ok().filter(|&i| i < cf.stages.len()))
    };
    let mut need = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !need.insert(i) {
            continue;
        }
        let s = &cf.stages[i];
        let mut refs = vec![s.base.clone()];
        for inst in &s.instructions {
            match &inst.op {
                Op::Copy(c) | Op::Add(c) => refs.extend(c.from.clone()),
                Op::Run { mounts, .. } => {
                    for m in mounts {
                        for kv in m.split(',') {
                            if let Some(v) = kv.strip_prefix("from=") {
                                refs.push(v.to_owned());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for r in refs {
            if let Some(j) = index_of(&r).filter(|&j| j < i) {
                todo.push(j);
            }
        }
    }
    need
}

/// `cairn build`.
pub fn build(ctx: &Context, a: BuildArgs) -> anyhow::Result<u8> {
    refuse(&a)?;
    let opts = options(&a)?;
    let store = ctx.store()?;
    let scratch_root = store.root().join("tmp");
    std::fs::create_dir_all(&scratch_root)
        .with_context(|| format!("create {}", scratch_root.display()))?;
    let inputs = inputs(&a, &scratch_root)?;
    let cf = cairn_containerfile::parse::parse(&inputs.text, &inputs.file)
        .map_err(|e| usage(e.to_string()))?;
    let target = match &a.target {
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            cf.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    usage(format!(
                        "--target {t}: no stage of that name in {} (stages: {})",
                        inputs.file,
                        cf.stages
                            .iter()
                            .filter_map(|s| s.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
        }
        None => cf.stages.len() - 1,
    };
    let mut build = stage::Build::new(ctx, &store, &opts, &cf, &inputs.file, &inputs.context, &a)?;
    let need = if opts.all_stages {
        (0..=target).collect()
    } else {
        needed_stages(&cf, target, &|w| build.expand_global(w))
    };
    for i in 0..=target {
        if !need.contains(&i) {
            continue;
        }
        build.run_stage(i, need.len())?;
    }
    let made = build.finish(target)?;
    build.warn_unused_args();
    if let Some(f) = &a.iidfile {
        write_iidfile(f, &made.id().to_string())?;
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    for t in &opts.tags {
        if !opts.quiet {
            let _ = writeln!(out, "Successfully tagged {t}");
        }
    }
    let _ = writeln!(out, "{}", made.id().hex());
    Ok(0)
}

/// `--iidfile`: the id written under a temp name and renamed, as podman.
/// The rename replaces a symlink planted at the path, never its target.
fn write_iidfile(f: &Path, id: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |e: std::io::Error| usage(format!("write --iidfile {}: {e}", f.display()));
    let dir = f
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".iidfile-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(id.as_bytes()).map_err(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    tmp.persist(f).map_err(|e| fail(e.error))?;
    Ok(())
}
