//! Pull progress: a bar per blob on a terminal, podman's plain lines
//! otherwise, nothing with `-q`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use cairn_store::media::Descriptor;
use cairn_store::progress::{BlobKind, PullProgress};
use cairn_store::{Digest, Reference};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Which output to give.
pub fn for_pull(quiet: bool) -> Box<dyn PullProgress> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::default())
    }
}

struct Quiet;

impl PullProgress for Quiet {
    fn warning(&self, message: &str) {
        eprintln!("WARN: {message}");
    }
}

fn what(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Config => "config",
        BlobKind::Layer => "blob",
    }
}

/// podman's non-terminal output.
#[derive(Default)]
struct Lines {
    announced: Mutex<bool>,
}

impl Lines {
    fn line(&self, s: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{s}");
    }

    fn announce(&self) {
        let mut a = self.announced.lock().expect("not poisoned");
        if !*a {
            *a = true;
            self.line("Getting image source signatures");
        }
    }
}

impl PullProgress for Lines {
    fn trying(&self, reference: &Reference) {
        self.line(&format!("Trying to pull {reference}..."));
    }
    fn blob_skipped(&self, desc: &Descriptor, kind: BlobKind) {
        self.announce();
        self.line(&format!(
            "Copying {} {} skipped: already exists",
            what(kind),
            desc.digest.short()
        ));
    }
    fn blob_started(&self, _desc: &Descriptor, _kind: BlobKind, _resumed_from: u64) {
        self.announce();
    }
    fn blob_done(&self, desc: &Descriptor, kind: BlobKind) {
        self.line(&format!(
            "Copying {} {} done",
            what(kind),
            desc.digest.short()
        ));
    }
    fn writing_manifest(&self) {
        self.announce();
        self.line("Writing manifest to image destination");
    }
    fn retrying(&self, what: &str, attempt: u32, delay: Duration) {
        self.line(&format!(
            "WARN: {what}; retrying in {} (attempt {attempt})",
            fmt_delay(delay)
        ));
    }
    fn warning(&self, message: &str) {
        self.line(&format!("WARN: {message}"));
    }
}

fn fmt_delay(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A bar per blob.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Bars {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("static template is valid")
        .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            bars: Mutex::new(HashMap::new()),
            style,
        }
    }

    fn println(&self, s: &str) {
        let _ = self.multi.println(s);
    }
}

impl PullProgress for Bars {
    fn trying(&self, reference: &Reference) {
        self.println(&format!("Trying to pull {reference}..."));
    }
    fn blob_skipped(&self, desc: &Descriptor, kind: BlobKind) {
        self.println(&format!(
            "Copying {} {} skipped: already exists",
            what(kind),
            desc.digest.short()
        ));
    }
    fn blob_started(&self, desc: &Descriptor, kind: BlobKind, resumed_from: u64) {
        let bar = self.multi.add(ProgressBar::new(desc.size));
        bar.set_style(self.style.clone());
        bar.set_prefix(format!("Copying {} {}", what(kind), desc.digest.short()));
        bar.set_position(resumed_from);
        self.bars
            .lock()
            .expect("not poisoned")
            .insert(desc.digest.clone(), bar);
    }
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("not poisoned").get(digest) {
            b.set_position(bytes);
        }
    }
    fn blob_done(&self, desc: &Descriptor, kind: BlobKind) {
        if let Some(b) = self.bars.lock().expect("not poisoned").remove(&desc.digest) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        self.println(&format!(
            "Copying {} {} done",
            what(kind),
            desc.digest.short()
        ));
    }
    fn writing_manifest(&self) {
        self.println("Writing manifest to image destination");
    }
    fn retrying(&self, what: &str, attempt: u32, delay: Duration) {
        self.println(&format!(
            "WARN: {what}; retrying in {} (attempt {attempt})",
            fmt_delay(delay)
        ));
    }
    fn warning(&self, message: &str) {
        self.println(&format!("WARN: {message}"));
    }
}
