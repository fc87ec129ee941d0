//! One build: its stages in order, each instruction in turn (see the
//! module doc of `build`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use anyhow::Context as _;
use cairn_containerfile::context::Context as BuildContext;
use cairn_containerfile::parse::{Cmd, Containerfile, Heredoc, Instruction, Op, Stage};
use cairn_engine::commit::{self, CommitOptions, NewImage};
use cairn_engine::container::Container;
use cairn_store::{Digest, Image, Store};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::{copy, usage, BuildArgs, Options};
use crate::cmd::container::{create_for_build, remove_for_build, run_for_build};
use crate::context::Context;
use crate::exit;

/// The build arguments every build knows without an `ARG` in the global
/// scope (BuildKit's automatic platform arguments).
fn platform_args() -> BTreeMap<String, String> {
    let p = cairn_store::media::host_platform();
    let variant = p.variant.clone().unwrap_or_default();
    let platform = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let mut m = BTreeMap::new();
    for side in ["TARGET", "BUILD"] {
        m.insert(format!("{side}PLATFORM"), platform.clone());
        m.insert(format!("{side}OS"), p.os.clone());
        m.insert(format!("{side}ARCH"), p.architecture.clone());
        m.insert(format!("{side}VARIANT"), variant.clone());
    }
    m
}

/// Build arguments a RUN sees without an `ARG` (BuildKit's proxy ones).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A build in progress.
pub(crate) struct Build<'a> {
    ctx: &'a Context,
    store: &'a Store,
    opts: &'a Options,
    cf: &'a Containerfile,
    /// The Containerfile's name (`-` for stdin).
    file: &'a str,
    context: &'a BuildContext,
    /// Global `ARG`s with their values (a build argument, else the default).
    global: BTreeMap<String, Option<String>>,
    used_args: BTreeSet<String>,
    /// Each built stage's image.
    results: Vec<Option<Image>>,
    /// Printed stage number ("[2/3]") for multi-stage builds.
    shown: usize,
    labels: Vec<(String, String)>,
    env: Vec<(String, String)>,
    squash: bool,
    squash_all: bool,
}

/// A stage's state between instructions.
struct State {
    /// The image so far (`None`: FROM scratch, nothing added yet).
    image: Option<Image>,
    /// The image config being made.
    config: Value,
    /// History entries of instructions that changed only the config,
    /// not yet in an image.
    pending: Vec<Value>,
    /// The cache key chain.
    key: String,
    /// `ARG`s in scope.
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// CMD set in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// `--layers=false`/`--squash`: the stage's one working container.
    work: Option<Container>,
    /// The image the stage started from (the parent of a squashed layer).
    base: Option<Image>,
    /// One-layer mode: the pending history entry of the last layer step.
    layer_entry: Option<usize>,
}

impl State {
    fn runtime(&mut self) -> &mut Map<String, Value> {
        let c = self
            .config
            .as_object_mut()
            .expect("an image config is an object");
        let rc = c.entry("config").or_insert_with(|| json!({}));
        if !rc.is_object() {
            *rc = json!({});
        }
        rc.as_object_mut().expect("made an object")
    }

    fn env(&self) -> Vec<String> {
        self.config
            .pointer("/config/Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn string(&self, key: &str) -> String {
        self.config
            .pointer(&format!("/config/{key}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }

    /// A variable for expansion: ENV wins over ARG, as BuildKit's.
    fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .iter()
            .rev()
            .find_map(|e| {
                e.split_once('=')
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            })
            .or_else(|| self.args.get(name).cloned())
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
        self.runtime().insert("Env".into(), json!(env));
    }

    fn workdir(&self) -> String {
        let w = self.string("WorkingDir");
        if w.is_empty() {
            "/".to_owned()
        } else {
            w
        }
    }

    fn chain(&mut self, parts: &[&str]) {
        let mut h = Sha256::new();
        h.update(self.key.as_bytes());
        for p in parts {
            h.update(b"\n");
            h.update(p.as_bytes());
        }
        self.key = hex::encode(h.finalize());
    }
}

/// HEALTHCHECK as the config records it (durations in nanoseconds).
fn healthcheck(h: Option<cairn_containerfile::parse::Health>) -> Value {
    let Some(h) = h else {
        return json!({"Test": ["NONE"]});
    };
    let mut v = json!({"Test": h.test});
    let ns = |d: std::time::Duration| json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    for (key, d) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if let Some(d) = d {
            v[key] = ns(d);
        }
    }
    if let Some(r) = h.retries {
        v["Retries"] = json!(r);
    }
    v
}

/// The history entry of an instruction that changes only the config.
fn nop(text: &str) -> String {
    format!("/bin/sh -c #(nop) {text}")
}

impl<'a> Build<'a> {
    pub(crate) fn new(
        ctx: &'a Context,
        store: &'a Store,
        opts: &'a Options,
        cf: &'a Containerfile,
        file: &'a str,
        context: &'a BuildContext,
        a: &BuildArgs,
    ) -> anyhow::Result<Build<'a>> {
        let mut global: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut used = BTreeSet::new();
        let auto = platform_args();
        for inst in &cf.args {
            let Op::Arg(pairs) = &inst.op else { continue };
            for (k, default) in pairs {
                let lookup = |n: &str| -> Option<String> {
                    global
                        .get(n)
                        .cloned()
                        .flatten()
                        .or_else(|| auto.get(n).cloned())
                };
                let value = match opts.build_args.get(k) {
                    Some(v) => {
                        used.insert(k.clone());
                        Some(v.clone())
                    }
                    None => match default {
                        Some(d) => Some(
                            cairn_containerfile::expand::expand(d, cf.escape, &lookup)
                                .map_err(|e| step_error(file, inst, &e.to_string()))?,
                        ),
                        None => None,
                    },
                };
                global.insert(k.clone(), value);
            }
        }
        let split = |flag: &str, items: &[String]| -> anyhow::Result<Vec<(String, String)>> {
            items
                .iter()
                .map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| usage(format!("invalid {flag} {l:?}: use KEY=VALUE")))
                })
                .collect()
        };
        Ok(Build {
            ctx,
            store,
            opts,
            cf,
            file,
            context,
            global,
            used_args: used,
            results: vec![None; cf.stages.len()],
            shown: 0,
            labels: split("--label", &a.labels)?,
            env: split("--env", &a.env)?,
            squash: a.squash,
            squash_all: a.squash_all,
        })
    }

    fn say(&self, line: impl AsRef<str>) {
        if !self.opts.quiet {
            let out = std::io::stdout();
            let mut out = out.lock();
            let _ = writeln!(out, "{}", line.as_ref());
            let _ = out.flush();
        }
    }

    /// A stage named `name` (its `AS` name or index) built before `before`.
    fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.cf.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < before))
    }

    /// An image by name, pulled as `--pull` says.
    fn image(&self, spec: &str) -> anyhow::Result<Image> {
        let search = self.ctx.search_registries()?;
        let found = match self.store.find_image(spec, &search) {
            Ok(i) => Some(i),
            Err(cairn_store::images::ImageError::NotKnown(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let pull = match (self.opts.pull.as_str(), &found) {
            ("always", _) => true,
            (_, Some(_)) => false,
            ("never", None) => {
                return Err(usage(format!(
                    "{spec}: image not known (--pull never: pull it first with `cairn pull {spec}`)"
                )))
            }
            (_, None) => true,
        };
        if !pull {
            return Ok(found.expect("checked"));
        }
        let args = crate::cmd::image::PullArgs {
            image: spec.to_owned(),
            platform: None,
            arch: None,
            os: None,
            variant: None,
            tls_verify: Some(self.opts.tls_verify),
            creds: self.opts.creds.clone(),
            authfile: self.opts.authfile.clone(),
            cert_dir: self.opts.cert_dir.clone(),
            quiet: self.opts.quiet,
            retry: self.opts.retry,
            retry_delay: self.opts.retry_delay.clone(),
            jobs: 6,
            unpack: true,
        };
        let id = crate::cmd::image::pull_image(self.ctx, &args)?;
        Ok(self.store.find_image(&id, &[])?)
    }

    /// `word` expanded with the global ARGs (unchanged if it cannot be).
    pub(crate) fn expand_global(&self, word: &str) -> String {
        cairn_containerfile::expand::expand(word, self.cf.escape, &|n| self.lookup_global(n))
            .unwrap_or_else(|_| word.to_owned())
    }

    fn lookup_global(&self, name: &str) -> Option<String> {
        self.global
            .get(name)
            .cloned()
            .flatten()
            .or_else(|| platform_args().get(name).cloned())
    }

    /// Builds stage `i`.
    pub(crate) fn run_stage(&mut self, i: usize, shown_of: usize) -> anyhow::Result<()> {
        let cf = self.cf;
        let stage = &cf.stages[i];
        self.shown += 1;
        let prefix = if shown_of > 1 {
            format!("[{}/{shown_of}] ", self.shown)
        } else {
            String::new()
        };
        let steps = stage.instructions.len() + 1;
        self.say(format!("{prefix}STEP 1/{steps}: {}", stage.text));
        let base_spec = match (&self.opts.from, i) {
            // --from replaces the first stage's base.
            (Some(f), 0) => f.clone(),
            _ => cairn_containerfile::expand::expand(&stage.base, cf.escape, &|n| {
                self.lookup_global(n)
            })
            .map_err(|e| usage(format!("{}:{}: FROM: {e}", self.file(), stage.line)))?,
        };
        let mut st = self.start_state(stage, i, &base_spec)?;
        for (n, inst) in stage.instructions.iter().enumerate() {
            self.say(format!("{prefix}STEP {}/{steps}: {}", n + 2, inst.text));
            self.instruction(i, &mut st, inst)?;
        }
        let image = self.close_stage(&mut st)?;
        self.results[i] = Some(image);
        Ok(())
    }

    /// The Containerfile's name, as errors give it.
    pub(crate) fn file(&self) -> &str {
        self.file
    }

    fn start_state(&mut self, stage: &Stage, i: usize, base_spec: &str) -> anyhow::Result<State> {
        let image = if base_spec == "scratch" {
            None
        } else if let Some(j) = self.stage_ref(base_spec, i) {
            Some(self.results[j].clone().ok_or_else(|| {
                usage(format!(
                    "FROM {base_spec}: stage {j} was not built (it is after the target?)"
                ))
            })?)
        } else {
            Some(self.image(base_spec)?)
        };
        let host = cairn_store::media::host_platform();
        let config = match &image {
            Some(img) => img.config_raw.clone(),
            None => json!({
                "architecture": host.architecture,
                "os": host.os,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
        };
        let mut st = State {
            key: String::new(),
            base: image.clone(),
            image,
            config,
            pending: Vec::new(),
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
            work: None,
            layer_entry: None,
        };
        if let Some(shell) = st.config.pointer("/config/Shell").and_then(Value::as_array) {
            let s: Vec<String> = shell
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if !s.is_empty() {
                st.shell = s;
            }
        }
        // ONBUILD triggers of the base are recorded, not run; the new
        // image does not inherit them.
        if let Some(rc) = st
            .config
            .pointer_mut("/config")
            .and_then(Value::as_object_mut)
        {
            rc.remove("OnBuild");
        }
        let base_id = st
            .image
            .as_ref()
            .map_or_else(|| "scratch".to_owned(), |i| i.digest().to_string());
        let format = format!("{:?}", self.opts.format);
        let ts = format!("{:?}", self.opts.timestamp);
        st.chain(&["cairn-build-v1", &base_id, &format, &ts, &stage.text]);
        Ok(st)
    }

    /// The variables an instruction's words expand with.
    fn expand_op(&self, st: &State, inst: &Instruction) -> anyhow::Result<Op> {
        inst.op
            .expand(self.cf.escape, &|n| st.lookup(n))
            .map_err(|e| step_error(self.file(), inst, &e.to_string()))
    }

    fn instruction(
        &mut self,
        stage: usize,
        st: &mut State,
        inst: &Instruction,
    ) -> anyhow::Result<()> {
        let op = match &inst.op {
            // RUN's words are the shell's to expand.
            Op::Run { .. } => inst.op.clone(),
            _ => self.expand_op(st, inst)?,
        };
        match op {
            Op::Arg(pairs) => {
                for (k, default) in pairs {
                    let value = match self.opts.build_args.get(&k) {
                        Some(v) => {
                            self.used_args.insert(k.clone());
                            Some(v.clone())
                        }
                        None => default
                            .or_else(|| self.global.get(&k).cloned().flatten())
                            .or_else(|| platform_args().get(&k).cloned()),
                    };
                    let v = value.unwrap_or_default();
                    st.chain(&["ARG", &k, &v]);
                    st.args.insert(k, v);
                }
                Ok(())
            }
            Op::Run {
                mounts,
                network,
                security,
                cmd,
                heredocs,
            } => {
                if let Some(s) = security.filter(|s| s != "sandbox") {
                    return Err(step_error(
                        self.file(),
                        inst,
                        &format!("RUN --security={s} is not supported (steps run confined, as `run` does)"),
                    ));
                }
                self.run(st, inst, &mounts, network.as_deref(), &cmd, &heredocs)
            }
            Op::Copy(c) => self.copy(stage, st, inst, &c, false),
            Op::Add(c) => self.copy(stage, st, inst, &c, true),
            other => {
                self.metadata(st, inst, other)?;
                Ok(())
            }
        }
    }

    /// ENV, LABEL, WORKDIR, … : the config changes, no layer.
    fn metadata(&mut self, st: &mut State, inst: &Instruction, op: Op) -> anyhow::Result<()> {
        let docker = self.opts.format == cairn_engine::commit::Format::Docker;
        match op {
            Op::Env(pairs) => {
                for (k, v) in pairs {
                    st.set_env(&k, &v);
                }
            }
            Op::Label(pairs) => {
                let rc = st.runtime();
                let labels = rc.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                for (k, v) in pairs {
                    labels[k] = json!(v);
                }
            }
            Op::Workdir(w) => {
                let cur = st.workdir();
                let new = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", cur.trim_end_matches('/'))
                };
                let clean = clean_path(&new);
                st.runtime().insert("WorkingDir".into(), json!(clean));
            }
            Op::User(u) => {
                st.runtime().insert("User".into(), json!(u));
            }
            Op::Expose(ports) => {
                let rc = st.runtime();
                let e = rc.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for p in ports {
                    for word in p.split_whitespace() {
                        let key = if word.contains('/') {
                            word.to_ascii_lowercase()
                        } else {
                            format!("{word}/tcp")
                        };
                        e[key] = json!({});
                    }
                }
            }
            Op::Volume(vols) => {
                let rc = st.runtime();
                let e = rc.entry("Volumes").or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for v in vols {
                    if v.trim().is_empty() {
                        return Err(step_error(self.file(), inst, "VOLUME with an empty path"));
                    }
                    e[v] = json!({});
                }
            }
            Op::StopSignal(s) => {
                st.runtime().insert("StopSignal".into(), json!(s));
            }
            Op::Entrypoint(c) => {
                let argv = self.argv(st, &c);
                let cmd_set = st.cmd_set;
                let rc = st.runtime();
                rc.insert("Entrypoint".into(), json!(argv));
                if !cmd_set {
                    // BuildKit: an ENTRYPOINT drops a CMD inherited from the base.
                    rc.remove("Cmd");
                }
            }
            Op::Cmd(c) => {
                let argv = self.argv(st, &c);
                st.runtime().insert("Cmd".into(), json!(argv));
                st.cmd_set = true;
            }
            Op::Shell(s) => {
                st.shell = s.clone();
                if docker {
                    st.runtime().insert("Shell".into(), json!(s));
                }
            }
            Op::Healthcheck(h) => {
                st.runtime().insert("Healthcheck".into(), healthcheck(h));
            }
            Op::Onbuild(t) => {
                let rc = st.runtime();
                let e = rc.entry("OnBuild").or_insert_with(|| json!([]));
                if !e.is_array() {
                    *e = json!([]);
                }
                e.as_array_mut().expect("an array").push(json!(t));
            }
            Op::Maintainer(m) => {
                st.config["author"] = json!(m);
            }
            Op::Arg(_) | Op::Run { .. } | Op::Copy(_) | Op::Add(_) => {
                unreachable!("handled by instruction()")
            }
        }
        let created = self.created();
        st.pending
            .push(json!({"created": created, "created_by": nop(&inst.text), "empty_layer": true}));
        let snapshot = serde_json::to_string(&st.config["config"]).unwrap_or_default();
        st.chain(&["META", &inst.text, &snapshot]);
        Ok(())
    }

    fn created(&self) -> String {
        match self.opts.timestamp {
            Some(t) => chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            None => cairn_engine::container::now_rfc3339(),
        }
    }

    /// A command's argv: exec form as is, shell form through SHELL.
    fn argv(&self, st: &State, c: &Cmd) -> Vec<String> {
        match c {
            Cmd::Exec(v) => v.clone(),
            Cmd::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    /// The image of a cached step, if it is still in the store.
    fn cached(&self, key: &str) -> Option<Image> {
        if self.opts.no_cache {
            return None;
        }
        let text = std::fs::read_to_string(self.cache_dir().join(key)).ok()?;
        let digest: Digest = text.trim().parse().ok()?;
        let index = self.store.index().ok()?;
        if !index.manifests.iter().any(|d| d.digest == digest) {
            return None;
        }
        let image = self.store.image_by_manifest(&digest).ok()??;
        let complete = image.blobs().into_iter().all(|b| self.store.has_blob(b));
        complete.then_some(image)
    }

    fn cache_dir(&self) -> std::path::PathBuf {
        self.ctx.root().join("build-cache")
    }

    fn remember(&self, key: &str, image: &Image) {
        if !self.opts.layers {
            return;
        }
        // A step not remembered only runs again next time: a warning.
        let dir = self.cache_dir();
        let written = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("create {}: {e}", dir.display()))
            .and_then(|()| {
                cairn_fsutil::write_atomic(
                    &dir.join(key),
                    image.digest().to_string().as_bytes(),
                    0o644,
                    cairn_fsutil::Durability::Volatile,
                )
                .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            tracing::warn!("the build cache did not record a step ({e}): it runs again next time");
        }
    }

    fn adopt(&self, st: &mut State, image: Image, cached: bool) {
        if cached {
            self.say(format!("--> Using cache {}", image.id().hex()));
        }
        self.say(format!("--> {}", &image.id().hex()[..11]));
        st.config = image.config_raw.clone();
        st.pending.clear();
        st.image = Some(image);
    }

    /// The step's new image for the new config (and, when `layer`, what
    /// the container changed), with the pending history entries.
    fn commit_step(
        &self,
        st: &mut State,
        c: Option<&Container>,
        created_by: String,
    ) -> anyhow::Result<Image> {
        let mut config = st.config.clone();
        let pending = std::mem::take(&mut st.pending);
        let last = match c {
            Some(_) => None,
            None => Some(pending.last().cloned().unwrap_or_else(|| json!({}))),
        };
        let keep = if last.is_some() {
            pending.len().saturating_sub(1)
        } else {
            pending.len()
        };
        {
            let h = config
                .as_object_mut()
                .expect("an object")
                .entry("history")
                .or_insert_with(|| json!([]));
            if !h.is_array() {
                *h = json!([]);
            }
            h.as_array_mut()
                .expect("an array")
                .extend(pending.into_iter().take(keep));
        }
        let img = NewImage {
            name: None,
            author: config["author"].as_str().map(str::to_owned),
            comment: None,
            created_by: match &last {
                Some(l) => l["created_by"].as_str().unwrap_or("").to_owned(),
                None => created_by,
            },
            changes: Vec::new(),
            format: self.opts.format,
            compression: cairn_store::compress::Compression::None,
            timestamp: self.opts.timestamp,
            intermediate: true,
            // The target's last image only (its state has no cache key):
            // cached step images stay free of this build's flags.
            annotations: if st.key.is_empty() {
                self.opts.annotations.clone()
            } else {
                Default::default()
            },
            omit_history: st.key.is_empty() && self.opts.omit_history,
        };
        let made = match (c, &st.image) {
            (Some(c), _) => commit::commit(
                self.store,
                c,
                &img,
                CommitOptions {
                    config: Some(config),
                    ..CommitOptions::default()
                },
            )?,
            (None, Some(parent)) => commit::with_config(self.store, parent, config, &img)?,
            (None, None) => {
                return Err(usage(
                    "a stage FROM scratch that adds no files makes no image: add a COPY, or build from an image",
                ))
            }
        };
        self.store
            .image_by_manifest(&made.manifest)?
            .ok_or_else(|| usage(format!("the new image {} vanished from the store", made.id)))
    }

    /// The container a RUN or COPY works in, from the step's image; in
    /// one-layer mode the stage's working container's changes move into it.
    fn step_container(&self, st: &mut State, argv: Vec<String>) -> anyhow::Result<Container> {
        let (image, carry) = match (&st.work, &st.base, &st.image) {
            (Some(w), Some(base), _) if !self.opts.layers || self.squash => {
                (base.digest().to_string(), Some(w.clone()))
            }
            (_, _, Some(img)) => (img.digest().to_string(), None),
            (_, _, None) => {
                return Err(usage(
                    "this step needs a root file system, and the stage is FROM scratch with no files yet: COPY files first",
                ))
            }
        };
        let mut full = argv;
        let cmd_at = full
            .iter()
            .position(|a| a == "\0IMAGE")
            .expect("argv has IMAGE");
        full[cmd_at] = image;
        let c = create_for_build(self.ctx, &full)?;
        if let Some(prev) = carry {
            copy::carry_upper(&prev, &c)?;
            remove_for_build(self.ctx, &prev)?;
            st.work = None;
        }
        Ok(c)
    }

    /// Done with a step's container: committed as the step's image (layer
    /// mode), or kept as the stage's working container (one-layer mode).
    fn finish_container(
        &self,
        st: &mut State,
        c: Container,
        key_before: &str,
        created_by: String,
    ) -> anyhow::Result<()> {
        if !self.opts.layers || self.squash {
            st.work = Some(c);
            // One layer for the stage: each step's entry is an empty one
            // but the last, which the stage's commit writes.
            let created = self.created();
            st.pending
                .push(json!({"created": created, "created_by": created_by, "empty_layer": true}));
            st.layer_entry = Some(st.pending.len() - 1);
            return Ok(());
        }
        let made = self.commit_step(st, Some(&c), created_by);
        let removed = remove_for_build(self.ctx, &c);
        let image = made?;
        removed?;
        self.remember(key_before, &image);
        self.adopt(st, image, false);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        st: &mut State,
        inst: &Instruction,
        mounts: &[String],
        network: Option<&str>,
        cmd: &Cmd,
        heredocs: &[Heredoc],
    ) -> anyhow::Result<()> {
        let argv = match (cmd, heredocs.is_empty()) {
            (Cmd::Shell(s), false) => {
                let mut v = st.shell.clone();
                v.push(with_heredocs(s, heredocs));
                v
            }
            _ => self.argv(st, cmd),
        };
        // The RUN's environment: the image's, then the ARGs in scope.
        let mut env: Vec<String> = st.env();
        let env_keys: BTreeSet<String> = env
            .iter()
            .map(|e| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_owned()))
            .collect();
        let mut arg_env = Vec::new();
        for (k, v) in &st.args {
            if !env_keys.contains(k) {
                arg_env.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p) {
                if !st.args.contains_key(*p) && !env_keys.contains(*p) {
                    arg_env.push(format!("{p}={v}"));
                    self.used_args.insert((*p).to_owned());
                }
            }
        }
        env.extend(arg_env.iter().cloned());
        let plan = copy::run_mounts(self, inst, mounts)?;
        // The op too: heredoc bodies are not in the instruction's text.
        let op = format!("{:?}", inst.op);
        st.chain(&["RUN", &inst.text, &op, &arg_env.join("\n"), &plan.key]);
        let key_before = st.key.clone();
        if self.opts.layers && !self.squash {
            if let Some(hit) = self.cached(&key_before) {
                self.adopt(st, hit, true);
                return Ok(());
            }
        }
        let mut args: Vec<String> =
            vec!["--pull".into(), "never".into(), "--no-healthcheck".into()];
        args.extend(self.opts.run_flags.iter().cloned());
        let net = network
            .map(|n| match n {
                "default" => None,
                other => Some(other.to_owned()),
            })
            .unwrap_or_else(|| self.opts.network.clone());
        if let Some(n) = net.filter(|n| !n.is_empty() && n != "private") {
            args.extend(["--network".into(), n]);
        }
        let user = st.string("User");
        if !user.is_empty() {
            args.extend(["--user".into(), user]);
        }
        args.extend(["--workdir".into(), st.workdir()]);
        for e in &env {
            args.extend(["--env".into(), e.clone()]);
        }
        args.extend(plan.flags.iter().cloned());
        args.push("--entrypoint".into());
        args.push(serde_json::to_string(&argv).expect("JSON"));
        args.push("\0IMAGE".into());
        let mut c = self.step_container(st, args)?;
        let code = run_for_build(&mut c, self.opts.quiet);
        let code = match code {
            Ok(code) => code,
            Err(e) => {
                let _ = remove_for_build(self.ctx, &c);
                return Err(e);
            }
        };
        if code != 0 {
            let _ = remove_for_build(self.ctx, &c);
            return Err(exit::with_code(
                u8::try_from(code.clamp(1, 255)).unwrap_or(1),
                format!(
                    "building at STEP \"{}\": while running runtime: exit status {code}",
                    inst.text
                ),
            ));
        }
        let created_by = match cmd {
            Cmd::Shell(_) => format!("{} {}", st.shell.join(" "), shell_text(cmd, heredocs)),
            Cmd::Exec(v) => v.join(" "),
        };
        self.finish_container(st, c, &key_before, created_by)
    }

    fn copy(
        &mut self,
        stage: usize,
        st: &mut State,
        inst: &Instruction,
        c: &cairn_containerfile::parse::Copy,
        add: bool,
    ) -> anyhow::Result<()> {
        let source = copy::source(self, stage, inst, c, add, &|n| st.lookup(n))?;
        st.chain(&[
            if add { "ADD" } else { "COPY" },
            &inst.text,
            &source.checksum,
        ]);
        let key = st.key.clone();
        if self.opts.layers && !self.squash {
            if let Some(hit) = self.cached(&key) {
                self.adopt(st, hit, true);
                return Ok(());
            }
        }
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let w = st.workdir();
            format!("{}/{}", w.trim_end_matches('/'), c.dest)
        };
        let created_by = nop(&format!(
            "{} {} in {} ",
            if add { "ADD" } else { "COPY" },
            source.checksum.replace("sha256:", "file:"),
            c.dest
        ));
        let one_layer = !self.opts.layers || self.squash;
        if st.work.is_none() && (st.image.is_none() || !one_layer) {
            // The layer is the copied files under the destination, written
            // straight into the store: where the destination is in the
            // image (symlinks followed inside it, what exists) is asked of
            // a child chrooted into it; FROM scratch has nothing to ask.
            let plan = match &st.image {
                None => copy::scratch_dest(&dest, &source, c)?,
                Some(img) => copy::resolve_dest(self, img, &dest, &st.workdir(), &source, c)?,
            };
            let mut config = st.config.clone();
            if let Some(h) = config["history"].as_array_mut() {
                h.append(&mut st.pending);
            }
            let made =
                copy::direct_layer(self, st.image.as_ref(), config, &source, &plan, &created_by)?;
            let image = self
                .store
                .image_by_manifest(&made.manifest)?
                .ok_or_else(|| usage("the new image vanished from the store"))?;
            self.remember(&key, &image);
            self.adopt(st, image, false);
            if one_layer {
                st.base = st.image.clone();
            }
            return Ok(());
        }
        let args: Vec<String> = vec![
            "--pull".into(),
            "never".into(),
            "--no-healthcheck".into(),
            "--network".into(),
            "none".into(),
            "--entrypoint".into(),
            "[\"/\"]".into(),
            "\0IMAGE".into(),
        ];
        let container = self.step_container(st, args)?;
        if let Err(e) = copy::into_container(self, &container, &source, &dest, &st.workdir(), c) {
            let _ = remove_for_build(self.ctx, &container);
            return Err(e);
        }
        self.finish_container(st, container, &key, created_by)
    }

    /// The stage's last image (its pending config changes, the one-layer
    /// mode's layer, and on the target the flags' labels and env).
    fn close_stage(&mut self, st: &mut State) -> anyhow::Result<Image> {
        if let Some(w) = st.work.take() {
            let made = {
                let created_by = match st.layer_entry.take() {
                    Some(i) if i < st.pending.len() => st.pending.remove(i)["created_by"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    _ => String::new(),
                };
                let image = self.commit_step(st, Some(&w), created_by);
                let removed = remove_for_build(self.ctx, &w);
                let image = image?;
                removed?;
                image
            };
            self.adopt(st, made, false);
        }
        if !st.pending.is_empty() {
            let key = st.key.clone();
            if let Some(hit) = (self.opts.layers && !self.squash)
                .then(|| self.cached(&key))
                .flatten()
            {
                self.adopt(st, hit, true);
            } else {
                let image = self.commit_step(st, None, String::new())?;
                self.remember(&key, &image);
                self.adopt(st, image, false);
            }
        }
        st.image.clone().ok_or_else(|| {
            usage("a stage FROM scratch that adds no files makes no image: add a COPY, or build from an image")
        })
    }

    /// The target's image with the flags' labels and env, squashed if
    /// asked, named.
    pub(crate) fn finish(&mut self, target: usize) -> anyhow::Result<Image> {
        let mut image = self.results[target].clone().expect("the target was built");
        let o = self.opts;
        if !self.labels.is_empty()
            || !self.env.is_empty()
            || !o.unsetenv.is_empty()
            || !o.annotations.is_empty()
            || o.omit_history
        {
            let mut st = State {
                image: Some(image.clone()),
                config: image.config_raw.clone(),
                pending: Vec::new(),
                key: String::new(),
                args: BTreeMap::new(),
                shell: Vec::new(),
                cmd_set: false,
                work: None,
                base: None,
                layer_entry: None,
            };
            let mut text = Vec::new();
            for (k, v) in self.env.clone() {
                st.set_env(&k, &v);
                text.push(format!("ENV {k}={v}"));
            }
            for (k, v) in self.labels.clone() {
                let rc = st.runtime();
                let labels = rc.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                labels[k.clone()] = json!(v);
                text.push(format!("LABEL {k}={v}"));
            }
            if !o.unsetenv.is_empty() {
                let mut env = st.env();
                env.retain(|e| {
                    let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                    !o.unsetenv.iter().any(|u| u == k)
                });
                st.runtime().insert("Env".into(), json!(env));
                text.push(format!("UNSETENV {}", o.unsetenv.join(" ")));
            }
            st.pending
                .push(json!({"created_by": nop(&text.join(" ")), "empty_layer": true}));
            image = self.commit_step(&mut st, None, String::new())?;
        }
        if self.squash_all {
            image = copy::squash_all(self, &image)?;
        }
        let desc = cairn_store::media::Descriptor::new(
            &image.manifest_descriptor.media_type,
            image.digest().clone(),
            image.manifest_descriptor.size,
        );
        if self.opts.tags.is_empty() {
            // Untagged, but listed: not an intermediate image.
            self.store.update_index(|index| {
                let mut changed = false;
                for d in &mut index.manifests {
                    if d.digest == desc.digest
                        && d.annotations.remove(commit::INTERMEDIATE).is_some()
                    {
                        changed = true;
                    }
                }
                Ok(changed)
            })?;
        }
        for t in &self.opts.tags {
            if !self.opts.quiet {
                let out = std::io::stdout();
                let _ = writeln!(out.lock(), "COMMIT {t}");
            }
            self.store
                .set_ref(t, &desc, None)
                .with_context(|| format!("name the built image {t}"))?;
        }
        Ok(image)
    }

    /// podman's warning for build arguments no ARG took.
    pub(crate) fn warn_unused_args(&self) {
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !self.global.contains_key(*k))
            .collect();
        if !unused.is_empty() {
            eprintln!(
                "[Warning] one or more build args were not consumed: {:?}",
                unused
            );
        }
    }

    pub(crate) fn ctx(&self) -> &Context {
        self.ctx
    }
    pub(crate) fn store(&self) -> &Store {
        self.store
    }
    pub(crate) fn opts(&self) -> &Options {
        self.opts
    }
    pub(crate) fn context(&self) -> &BuildContext {
        self.context
    }
    pub(crate) fn result_of(&self, name: &str, before: usize) -> Option<Image> {
        self.stage_ref(name, before)
            .and_then(|j| self.results[j].clone())
    }
    pub(crate) fn pull_image(&self, spec: &str) -> anyhow::Result<Image> {
        self.image(spec)
    }
}

/// An instruction's failure: the Containerfile, its line and instruction.
pub(crate) fn step_error(file: &str, inst: &Instruction, msg: &str) -> anyhow::Error {
    usage(format!(
        "{file}:{}: {}: {msg}",
        inst.line,
        inst.text.split_whitespace().next().unwrap_or("")
    ))
}

/// A shell-form RUN's command with its heredocs (the shell reads them).
fn with_heredocs(cmd: &str, heredocs: &[Heredoc]) -> String {
    let trimmed = cmd.trim();
    // `RUN <<EOF` alone: the heredoc is the script.
    if heredocs.len() == 1 && trimmed.starts_with("<<") && !trimmed.contains(char::is_whitespace) {
        return heredocs[0].content.clone();
    }
    let mut s = cmd.to_owned();
    for h in heredocs {
        s.push('\n');
        s.push_str(&h.content);
        if !h.content.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&h.name);
    }
    s.push('\n');
    s
}

fn shell_text(cmd: &Cmd, heredocs: &[Heredoc]) -> String {
    match cmd {
        Cmd::Shell(s) if heredocs.is_empty() => s.clone(),
        Cmd::Shell(s) => with_heredocs(s, heredocs),
        Cmd::Exec(v) => v.join(" "),
    }
}

/// `/a/./b/../c` → `/a/c`.
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}
