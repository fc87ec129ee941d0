//! End-to-end: a hostile registry (the fault proxy in front of a real
//! registry) floods cairn with responses that never end or are far larger
//! than anything cairn reads. Each pull must fail fast, with exit 125 and
//! one line naming what was too large and the cap, while the cairn
//! process's peak RSS (measured by `/usr/bin/time -v`, the kernel's
//! `ru_maxrss`) stays small, and nothing is left in the store. As root and
//! as the rootless test user.

use std::path::Path;
use std::time::Duration;

use cairn_tests::util::run_timed;
use cairn_tests::{
    Action, Cairn, FaultProxy, ImageSpec, OciLayout, Registry, RegistryOptions, Rule,
};

/// What a flooded pull may cost at most: a pull of a small image takes a
/// few tens of MiB (a debug build); the floods reached GiBs before the caps.
const MAX_PEAK_RSS_KIB: u64 = 200 << 10;
/// How long a flooded pull may take: the floods are local and unthrottled,
/// a cap is reached in well under a second.
const MAX_DURATION: Duration = Duration::from_secs(30);

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A finished run under `/usr/bin/time -v`.
struct Measured {
    code: i32,
    stderr: String,
    peak_rss_kib: u64,
    took: Duration,
}

/// Runs cairn (as `cairn`'s user) under `/usr/bin/time -v` and reads its
/// peak resident set size. `setpriv` (rootless) execs cairn in the same
/// process, so the peak is cairn's.
fn measured(cairn: &Cairn, args: &[&str]) -> Measured {
    let run = run_timed(&cairn.command(args), &[]).expect("/usr/bin/time runs");
    let peak_rss_kib = run
        .max_rss_kib
        .unwrap_or_else(|| panic!("no peak RSS in {}", run.report));
    Measured {
        code: run.output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&run.output.stderr).into_owned(),
        peak_rss_kib,
        took: run.elapsed,
    }
}

/// A registry holding `hostile:latest`, a small image, and a fault proxy in front.
fn hostile_registry(dir: &Path) -> (Registry, FaultProxy, cairn_tests::BuiltImage) {
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let layout = OciLayout::create(dir).expect("layout");
    let image = layout
        .add_image(
            "latest",
            &ImageSpec::new().layer(&[("etc/payload", b"hostile registry test")]),
        )
        .expect("image");
    reg.push(&image.skopeo_ref, "hostile:latest", &[])
        .expect("push");
    let proxy = FaultProxy::start(reg.host()).expect("proxy starts");
    (reg, proxy, image)
}

/// Both users the attacks run as.
fn environments() -> Vec<(&'static str, Cairn)> {
    vec![
        ("root", Cairn::new().expect("env")),
        ("rootless", Cairn::rootless().expect("rootless env")),
    ]
}

/// Pulls `hostile:latest` through the proxy and checks the pull failed as
/// it must: exit 125, an error line containing each of `expect`, fast,
/// with a small peak RSS, nothing left in the store.
fn assert_refused(who: &str, cairn: &Cairn, proxy: &FaultProxy, expect: &[&str]) {
    let reference = format!("{}/hostile:latest", proxy.host());
    let m = measured(
        cairn,
        &[
            "pull",
            "--tls-verify=false",
            "--retry",
            "1",
            "--retry-delay",
            "0s",
            &reference,
        ],
    );
    let error = m
        .stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("{who}: no Error: line (exit {}) in {:?}", m.code, m.stderr));
    eprintln!(
        "{who}: exit {}, {:?}, peak RSS {} KiB: {error}",
        m.code, m.took, m.peak_rss_kib
    );
    assert_eq!(m.code, 125, "{who}: {}", m.stderr);
    for e in expect {
        assert!(error.contains(e), "{who}: {error:?} lacks {e:?}");
    }
    assert!(
        error.len() < 1000,
        "{who}: one short line, got {} bytes",
        error.len()
    );
    assert!(
        m.peak_rss_kib < MAX_PEAK_RSS_KIB,
        "{who}: peak RSS {} KiB, more than {MAX_PEAK_RSS_KIB} KiB",
        m.peak_rss_kib
    );
    assert!(m.took < MAX_DURATION, "{who}: took {:?}", m.took);
    // Nothing of the attack is kept: a blob left is one another download
    // of the same pull verified before the pull gave up (a layer still
    // pinned by its download while the failed pull collected), and it
    // hashes to its name.
    for blob in cairn.blobs() {
        use sha2::Digest as _;
        let path = cairn.root().join("blobs/sha256").join(&blob);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            blob,
            "{who}: an unverified blob was kept: {}",
            path.display()
        );
    }
    let images = cairn.ok(["images", "-q"]);
    assert!(images.trim().is_empty(), "{who}: images left: {images}");
}

/// An endless manifest, and one whose `Content-Length` says 5 GiB: read
/// no further than the 4 MiB manifest cap.
#[test]
fn endless_and_oversized_manifests_are_refused_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, _) = hostile_registry(dir.path());
    for length in [None, Some(5u64 << 30), Some((4 << 20) + 1)] {
        for (who, cairn) in environments() {
            proxy.clear_rules();
            let rule = proxy.add_rule(
                Rule::new(Action::Flood {
                    code: 200,
                    content_type: OCI_MANIFEST.into(),
                    length,
                })
                .method("GET")
                .path_contains("/manifests/"),
            );
            assert_refused(
                &format!("{who}, manifest of {length:?} bytes"),
                &cairn,
                &proxy,
                &[
                    "hostile:latest",
                    &format!(
                        "manifest latest from {} is larger than 4194304 bytes",
                        proxy.host()
                    ),
                ],
            );
            assert_eq!(proxy.rule_hits(rule), 1, "refused without a retry");
        }
    }
}

/// A registry that asks for a token and whose token endpoint never stops
/// answering: read no further than the 1 MiB token cap.
#[test]
fn endless_token_response_is_refused_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, _) = hostile_registry(dir.path());
    let realm = format!("{}/token", proxy.url());
    for (who, cairn) in environments() {
        proxy.clear_rules();
        proxy.add_rule(
            Rule::new(Action::BearerChallenge {
                realm: realm.clone(),
            })
            .method("GET")
            .path_contains("/v2/"),
        );
        let token = proxy.add_rule(
            Rule::new(Action::Flood {
                code: 200,
                content_type: "application/json".into(),
                length: None,
            })
            .path_contains("/token"),
        );
        assert_refused(
            who,
            &cairn,
            &proxy,
            &[
                "hostile:latest",
                &format!("token response from {realm} is larger than 1048576 bytes"),
            ],
        );
        assert_eq!(proxy.rule_hits(token), 1, "refused without a retry");
    }
}

/// An endless config blob: the download stops at the size the manifest
/// declares (the blob writer refuses the next byte).
#[test]
fn endless_config_is_cut_at_its_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = hostile_registry(dir.path());
    let config = image.config_digest.clone();
    for (who, cairn) in environments() {
        proxy.clear_rules();
        proxy.add_rule(
            Rule::new(Action::Flood {
                code: 200,
                content_type: "application/octet-stream".into(),
                length: None,
            })
            .method("GET")
            .path_contains(&config),
        );
        assert_refused(who, &cairn, &proxy, &[&config, "size mismatch"]);
    }
}

/// Endless error bodies (a 500 on the manifest, retried; a 404 on a
/// layer): only their first MiB is read, for the message, and the line
/// shows a short excerpt.
#[test]
fn endless_error_bodies_are_read_no_further_than_their_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = hostile_registry(dir.path());
    let layer = image.layer_digests[0].clone();
    for (who, cairn) in environments() {
        proxy.clear_rules();
        let rule = proxy.add_rule(
            Rule::new(Action::Flood {
                code: 500,
                content_type: "application/json".into(),
                length: None,
            })
            .method("GET")
            .path_contains("/manifests/"),
        );
        assert_refused(
            &format!("{who}, manifest 500"),
            &cairn,
            &proxy,
            &["kept failing after 2 attempts", "HTTP 500"],
        );
        assert_eq!(proxy.rule_hits(rule), 2, "--retry 1: two attempts");

        proxy.clear_rules();
        proxy.add_rule(
            Rule::new(Action::Flood {
                code: 404,
                content_type: "application/json".into(),
                length: None,
            })
            .method("GET")
            .path_contains(&layer),
        );
        assert_refused(&format!("{who}, layer 404"), &cairn, &proxy, &["HTTP 404"]);
    }
}

/// A manifest whose config, or an index whose entry, declares a terabyte:
/// refused from the declared size, before a byte of it is fetched (the
/// download would otherwise go on until the disk is full).
#[test]
fn declared_sizes_over_the_caps_are_refused_before_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = hostile_registry(dir.path());
    let huge: u64 = 1 << 40;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": image.config_digest,
            "size": huge,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": image.layer_digests[0],
            "size": 1000,
        }],
    });
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": image.manifest_digest,
            "size": huge,
            "platform": {"architecture": arch, "os": "linux"},
        }],
    });
    for (what, body, expect) in [
        (
            "config",
            manifest.to_string(),
            format!("the config {} declares {huge} bytes", image.config_digest),
        ),
        (
            "index entry",
            index.to_string(),
            format!(
                "the index entry {} declares {huge} bytes",
                image.manifest_digest
            ),
        ),
    ] {
        for (who, cairn) in environments() {
            proxy.clear_rules();
            proxy.clear_requests();
            proxy.add_rule(
                Rule::new(Action::Status {
                    code: 200,
                    retry_after: None,
                    body: body.clone(),
                })
                .method("GET")
                .path_contains("/manifests/latest"),
            );
            assert_refused(&format!("{who}, {what}"), &cairn, &proxy, &[&expect]);
            let fetched: Vec<_> = proxy
                .requests()
                .into_iter()
                .filter(|r| r.path.contains("/blobs/") || r.path.contains("/manifests/sha256:"))
                .collect();
            assert!(fetched.is_empty(), "{who}, {what}: fetched {fetched:?}");
        }
    }
}

/// An endless layer: like the config, cut at its declared size.
#[test]
fn endless_layer_is_cut_at_its_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = hostile_registry(dir.path());
    let layer = image.layer_digests[0].clone();
    for (who, cairn) in environments() {
        proxy.clear_rules();
        proxy.add_rule(
            Rule::new(Action::Flood {
                code: 200,
                content_type: "application/octet-stream".into(),
                length: None,
            })
            .method("GET")
            .path_contains(&layer),
        );
        assert_refused(who, &cairn, &proxy, &[&layer, "size mismatch"]);
    }
}
