//! End-to-end: `cairn pull` and the image verbs against a real registry
//! (CNCF distribution), real Debian images, skopeo and umoci.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_tests::fixtures::{self, refs};
use cairn_tests::util::{is_root, run, sha256_digest, skopeo};
use cairn_tests::{
    Action, Auth, Cairn, FaultProxy, ImageSpec, OciLayout, Registry, RegistryOptions, Rule,
};
use serde_json::Value;

fn registry() -> Registry {
    Registry::start(RegistryOptions::default()).expect("registry starts")
}

fn push(reg: &Registry, fixture: &str, dest: &str, extra: &[&str]) {
    reg.push(&fixtures::oci_ref(fixture), dest, extra)
        .unwrap_or_else(|e| panic!("push {fixture}: {e:#}"));
}

/// `skopeo inspect --raw` of a pushed image, parsed.
fn raw_manifest(reg: &Registry, repo_ref: &str) -> Value {
    serde_json::from_slice(&reg.manifest(repo_ref).expect("manifest").bytes).expect("JSON")
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("sha256 digest")
}

fn blob_gets(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .requests_matching("GET", "/blobs/")
        .into_iter()
        .map(|r| r.path)
        .collect()
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no Error: line in {stderr:?}"))
}

/// Small image built in code, for tests about protocol behaviour rather
/// than content.
fn small_image(dir: &Path, tag: &str, content: &[u8]) -> cairn_tests::BuiltImage {
    let layout = OciLayout::create(dir).expect("layout");
    layout
        .add_image(tag, &ImageSpec::new().layer(&[("etc/payload", content)]))
        .expect("image")
}

#[test]
fn pulls_a_real_debian_image_that_skopeo_and_umoci_read() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let manifest = raw_manifest(&reg, "debian:bookworm");
    let manifest_digest = reg.manifest_digest("debian:bookworm").unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:bookworm", reg.host());

    let out = cairn.ok(["pull", "--tls-verify=false", &reference]);
    assert_eq!(out.trim(), hex(&config_digest), "pull prints the image id");
    assert_eq!(cairn.refs(), vec![reference.clone()]);

    // Every blob of the image is stored once, named by its digest, read-only.
    let mut want: BTreeSet<String> = layer_digests(&manifest)
        .iter()
        .map(|d| hex(d).to_owned())
        .collect();
    want.insert(hex(&config_digest).to_owned());
    want.insert(hex(&manifest_digest).to_owned());
    let have: BTreeSet<String> = cairn.blobs().into_iter().collect();
    assert_eq!(have, want);
    for b in &have {
        let p = cairn.root().join("blobs/sha256").join(b);
        assert_eq!(sha256_digest(&fs::read(&p).unwrap()), format!("sha256:{b}"));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
    assert!(cairn.temp_files().is_empty(), "{:?}", cairn.temp_files());

    // Other OCI tools read the store unchanged.
    let inspect: Value = serde_json::from_str(
        &skopeo(&[
            "inspect",
            &format!("oci:{}:{reference}", cairn.root().display()),
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(inspect["Digest"], manifest_digest.as_str());
    let bundle = cairn.scratch().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:{reference}", cairn.root().display()),
        bundle.to_str().unwrap(),
    ]))
    .unwrap();
    let release = fs::read_to_string(bundle.join("rootfs/etc/os-release")).unwrap();
    assert!(release.contains("bookworm"), "{release}");

    let images = cairn.ok(["images"]);
    let row = images.lines().nth(1).expect("a row");
    assert!(
        row.starts_with(&format!("{}/debian", reg.host()))
            && row.contains("bookworm")
            && row.contains(&config_digest[7..19]),
        "{images}"
    );
    cairn.assert_clean();
}

#[test]
fn repulling_a_present_image_makes_one_manifest_request_and_nothing_else() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:bookworm", proxy.host());
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    assert_eq!(blob_gets(&proxy).len(), 2, "config and one layer");
    proxy.clear_requests();
    let id = cairn.ok(["pull", "--tls-verify=false", "-q", &reference]);
    let manifests = proxy.requests_matching("", "/manifests/");
    assert_eq!(manifests.len(), 1, "{:?}", proxy.requests());
    assert!(blob_gets(&proxy).is_empty(), "{:?}", proxy.requests());
    // Nothing but the /v2/ ping and the manifest.
    for r in proxy.requests() {
        assert!(r.path == "/v2/" || r.path.contains("/manifests/"), "{r:?}");
    }
    assert_eq!(id.trim().len(), 64);
}

/// `pull --unpack=false` stores the blobs only (what skopeo copy does):
/// no changeset, object or image root; the first create builds them, and
/// the container sees the image.
#[test]
fn pull_without_unpack_stores_blobs_only_and_create_builds_the_root() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:bookworm", reg.host());
    let id = cairn.ok([
        "pull",
        "-q",
        "--tls-verify=false",
        "--unpack=false",
        &reference,
    ]);
    assert_eq!(id.trim().len(), 64);
    let entries = |d: &str| {
        std::fs::read_dir(cairn.root().join(d))
            .map(|rd| rd.count())
            .unwrap_or(0)
    };
    assert_eq!(entries("images"), 0, "no image root");
    assert_eq!(entries("layers"), 0, "no changeset");
    assert_eq!(blob_count(cairn.root()), 3, "manifest, config, one layer");
    let out = cairn.ok(["run", "--rm", &reference, "cat", "/etc/debian_version"]);
    assert!(out.trim().starts_with("12"), "{out}");
    assert_eq!(entries("images"), 1, "create built the root");
    let r = cairn.run(["pull", "--unpack=maybe", &reference]);
    assert_eq!(r.code, 125, "{}", r.stderr);
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn layers_shared_between_images_are_fetched_and_stored_once() {
    let reg = registry();
    push(&reg, refs::MULTI, "multi:1", &[]);
    push(&reg, refs::MULTI_SIBLING, "sibling:1", &[]);
    let multi = raw_manifest(&reg, "multi:1");
    let sibling = raw_manifest(&reg, "sibling:1");
    let (ml, sl) = (layer_digests(&multi), layer_digests(&sibling));
    assert_eq!(ml.len(), 4);
    assert_eq!(ml[..3], sl[..3], "fixture shares the lower three layers");
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let cairn = Cairn::new().unwrap();
    cairn.ok([
        "pull",
        "--tls-verify=false",
        &format!("{}/multi:1", proxy.host()),
    ]);
    proxy.clear_requests();
    cairn.ok([
        "pull",
        "--tls-verify=false",
        &format!("{}/sibling:1", proxy.host()),
    ]);
    let fetched: BTreeSet<String> = blob_gets(&proxy)
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [
        sl[3].clone(),
        sibling["config"]["digest"].as_str().unwrap().to_owned(),
    ]
    .into();
    assert_eq!(fetched, want, "only the top layer and the config are new");
    // 4 + 1 layers, 2 configs, 2 manifests.
    assert_eq!(cairn.blobs().len(), 9);
    cairn.assert_clean();
}

#[test]
fn pulls_zstd_uncompressed_and_docker_schema2_images() {
    let reg = registry();
    // Order matters: skopeo's blob-info cache would otherwise reuse the
    // uncompressed layer, once in the registry, for the other pushes.
    push(
        &reg,
        refs::DEBIAN_MIN,
        "debian:docker",
        &["--format", "v2s2"],
    );
    push(&reg, refs::DEBIAN_MIN_ZSTD, "debian:zstd", &[]);
    // skopeo compresses plain layers on push unless told to keep them.
    push(
        &reg,
        refs::DEBIAN_MIN_PLAIN,
        "debian:plain",
        &["--preserve-digests"],
    );
    let cairn = Cairn::new().unwrap();
    let cases = [
        (
            "zstd",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "plain",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ];
    for (tag, manifest_type, layer_type) in cases {
        let reference = format!("{}/debian:{tag}", reg.host());
        cairn.ok(["pull", "--tls-verify=false", &reference]);
        let index = cairn.index();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == reference.as_str())
            .unwrap_or_else(|| panic!("{reference} in index.json"));
        assert_eq!(entry["mediaType"], manifest_type, "{tag}");
        let digest = entry["digest"].as_str().unwrap();
        let stored: Value = serde_json::from_slice(
            &fs::read(cairn.root().join("blobs/sha256").join(hex(digest))).unwrap(),
        )
        .unwrap();
        assert_eq!(stored["layers"][0]["mediaType"], layer_type, "{tag}");
        let inspect: Value = serde_json::from_str(&cairn.ok(["inspect", &reference])).unwrap();
        assert_eq!(inspect[0]["ManifestType"], manifest_type);
    }
    cairn.assert_clean();
}

#[test]
fn multi_platform_index_resolves_to_the_asked_platform() {
    let reg = registry();
    push(&reg, refs::PLATFORMS, "multi-arch:1", &["--all"]);
    let index_digest = reg.manifest_digest("multi-arch:1").unwrap();
    let reference = format!("{}/multi-arch:1", reg.host());
    let cases = [
        (None, "amd64", None),
        (Some("linux/arm64"), "arm64", None),
        (Some("linux/arm64/v8"), "arm64", None),
        (Some("linux/arm/v7"), "arm", Some("v7")),
    ];
    for (platform, arch, variant) in cases {
        let cairn = Cairn::new().unwrap();
        let mut args = vec!["pull", "--tls-verify=false"];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        args.push(&reference);
        cairn.ok(&args);
        let inspect: Value = serde_json::from_str(&cairn.ok(["inspect", &reference])).unwrap();
        assert_eq!(inspect[0]["Architecture"], arch, "{platform:?}");
        if let Some(v) = variant {
            let config = cairn
                .root()
                .join("blobs/sha256")
                .join(inspect[0]["Id"].as_str().unwrap());
            let config: Value = serde_json::from_slice(&fs::read(config).unwrap()).unwrap();
            assert_eq!(config["variant"], v);
        }
        // The index is kept (for RepoDigests) and nothing of other platforms.
        let repo_digests = inspect[0]["RepoDigests"].as_array().unwrap();
        assert!(
            repo_digests
                .iter()
                .any(|d| d.as_str().unwrap().ends_with(&index_digest)),
            "{repo_digests:?}"
        );
        // index + manifest + config + layer(s) of that one image.
        let image_manifest = inspect[0]["Digest"].as_str().unwrap();
        let m: Value = serde_json::from_slice(
            &fs::read(cairn.root().join("blobs/sha256").join(hex(image_manifest))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            cairn.blobs().len(),
            3 + layer_digests(&m).len(),
            "{platform:?}"
        );
        cairn.assert_clean();
    }
    // By digest too.
    let cairn = Cairn::new().unwrap();
    cairn.ok([
        "pull",
        "--tls-verify=false",
        &format!("{}/multi-arch@{index_digest}", reg.host()),
    ]);
    // A platform the index does not offer: one clear line, nothing stored.
    let cairn = Cairn::new().unwrap();
    let r = cairn.fails(
        125,
        [
            "pull",
            "--tls-verify=false",
            "--platform",
            "linux/s390x",
            &reference,
        ],
    );
    let line = error_line(&r.stderr);
    assert!(
        line.contains("linux/s390x") && line.contains("linux/amd64") && line.contains(&reference),
        "{line}"
    );
    assert!(
        !line.contains("unknown"),
        "attestation entries are not offered: {line}"
    );
    assert!(cairn.refs().is_empty());
    assert!(cairn.blobs().is_empty(), "{:?}", cairn.blobs());
}

#[test]
fn schema1_and_non_image_manifests_are_refused_clearly() {
    let reg = registry();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let cairn = Cairn::new().unwrap();
    let schema1 = r#"{"schemaVersion":1,"name":"old","tag":"v1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let helm = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{d}","size":0}},"layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{d}","size":0}}]}}"#
    );
    for (repo, body, want) in [
        ("old", schema1.to_owned(), "schema 1"),
        ("chart", helm, "not a container image"),
    ] {
        proxy.add_rule(
            Rule::new(Action::Status {
                code: 200,
                retry_after: None,
                body,
            })
            .path_contains(&format!("/{repo}/manifests/")),
        );
        let reference = format!("{}/{repo}:v1", proxy.host());
        let r = cairn.fails(125, ["pull", "--tls-verify=false", &reference]);
        let line = error_line(&r.stderr);
        assert!(line.contains(&reference) && line.contains(want), "{line}");
    }
    assert!(cairn.refs().is_empty());
    assert!(cairn.blobs().is_empty());
}

#[test]
fn registry_errors_are_one_clear_line_with_exit_125() {
    let reg = registry();
    let dir = cairn_tests::util::temp_dir("img").unwrap();
    let img = small_image(dir.path(), "t", b"hello");
    reg.push(&img.skopeo_ref, "present:1", &[]).unwrap();
    let cairn = Cairn::new().unwrap();
    let host = reg.host();
    let unused = cairn_tests::util::free_port().unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("{host}/present:nope"), vec!["manifest unknown"]),
        (format!("{host}/absent:1"), vec!["manifest unknown"]),
        (
            format!("127.0.0.1:{unused}/x:1"),
            vec!["cannot reach registry", "refused"],
        ),
        (
            format!("{host}/UPPER:1"),
            vec!["invalid image reference", "lowercase"],
        ),
        (
            format!("{host}/x@sha256:1234"),
            vec!["invalid image reference", "64"],
        ),
    ];
    for (reference, wants) in &cases {
        let r = cairn.fails(
            125,
            ["pull", "--tls-verify=false", "--retry", "1", reference],
        );
        let line = error_line(&r.stderr);
        assert!(line.contains(reference.as_str()), "{line}");
        for w in wants {
            assert!(line.contains(w), "{reference}: {line}");
        }
        assert_eq!(
            r.stderr.lines().filter(|l| l.starts_with("Error")).count(),
            1
        );
    }
    assert!(cairn.refs().is_empty());
    assert!(cairn.blobs().is_empty());
    cairn.assert_clean();
}

#[test]
fn a_tampered_or_truncated_registry_blob_is_refused_and_nothing_is_kept() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:tampered", &[]);
    let manifest = raw_manifest(&reg, "debian:tampered");
    let layer = layer_digests(&manifest)[0].clone();
    let data = reg.blob_data_path(&layer);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, &bytes).unwrap();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:tampered", reg.host());
    let r = cairn.fails(125, ["pull", "--tls-verify=false", &reference]);
    let line = error_line(&r.stderr);
    assert!(
        line.contains("digest mismatch") && line.contains(&layer) && line.contains(&reference),
        "{line}"
    );
    assert!(cairn.refs().is_empty());
    assert!(
        cairn.blobs().is_empty(),
        "manifest and config are discarded too: {:?}",
        cairn.blobs()
    );
    assert!(cairn.temp_files().is_empty());
    cairn.assert_clean();

    // A blob shorter than its descriptor.
    bytes.truncate(mid);
    fs::write(&data, &bytes).unwrap();
    let r = cairn.fails(
        125,
        ["pull", "--tls-verify=false", "--retry", "1", &reference],
    );
    let line = error_line(&r.stderr);
    assert!(
        line.contains(&layer) && line.contains("truncated") && line.contains(&reference),
        "{line}"
    );
    assert!(cairn.refs().is_empty() && cairn.blobs().is_empty() && cairn.temp_files().is_empty());
}

#[test]
fn truncated_downloads_resume_with_range_requests() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:1", &[]);
    let layer = layer_digests(&raw_manifest(&reg, "debian:1"))[0].clone();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    proxy.add_rule(
        Rule::new(Action::Truncate {
            after_bytes: 4_000_000,
        })
        .method("GET")
        .path_contains(&layer)
        .times(2),
    );
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:1", proxy.host());
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    let gets: Vec<_> = proxy.requests_matching("GET", &layer);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some("bytes=0-"));
    // Each retry continues where the cut left it.
    for g in &gets[1..] {
        let from: u64 = g
            .range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("resume without a range: {g:?}"));
        assert!(from >= 4_000_000, "{g:?}");
    }
    cairn.assert_clean();

    // Cut every time: the pull gives up, and leaves nothing behind.
    let cairn = Cairn::new().unwrap();
    proxy.add_rule(
        Rule::new(Action::Truncate {
            after_bytes: 1_000_000,
        })
        .method("GET")
        .path_contains(&layer)
        .times(100),
    );
    let r = cairn.fails(
        125,
        [
            "pull",
            "--tls-verify=false",
            "--retry",
            "2",
            "--retry-delay",
            "10ms",
            &reference,
        ],
    );
    let line = error_line(&r.stderr);
    assert!(line.contains(&layer) && line.contains(&reference), "{line}");
    assert!(cairn.refs().is_empty() && cairn.blobs().is_empty() && cairn.temp_files().is_empty());
}

#[test]
fn rate_limits_and_server_errors_are_retried_honoring_retry_after() {
    let reg = registry();
    let dir = cairn_tests::util::temp_dir("img").unwrap();
    let img = small_image(dir.path(), "t", &vec![7u8; 300_000]);
    reg.push(&img.skopeo_ref, "limited:1", &[]).unwrap();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let layer = img.layer_digests[0].clone();
    proxy.add_rule(
        Rule::new(Action::too_many_requests("2"))
            .path_contains(&layer)
            .times(2),
    );
    proxy.add_rule(
        Rule::new(Action::status(503))
            .path_contains("/manifests/")
            .times(2),
    );
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/limited:1", proxy.host());
    let r = cairn.run(["pull", "--tls-verify=false", &reference]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("retrying"), "{}", r.stderr);
    let hits = proxy.requests_matching("", &layer);
    let limited = hits
        .iter()
        .find(|h| h.status == Some(429))
        .expect("a 429 was served");
    let ok = hits
        .iter()
        .find(|h| h.method == "GET" && matches!(h.status, Some(200) | Some(206)))
        .expect("a served GET");
    assert!(
        ok.at.duration_since(limited.at) >= Duration::from_millis(1900),
        "waited {:?} after Retry-After: 2",
        ok.at.duration_since(limited.at)
    );
    assert_eq!(proxy.requests_matching("GET", "/manifests/").len(), 3);
    cairn.assert_clean();

    // A registry that keeps failing: a bounded number of attempts, then a clear error.
    let cairn = Cairn::new().unwrap();
    proxy.add_rule(
        Rule::new(Action::status(500))
            .path_contains("/manifests/")
            .times(100),
    );
    proxy.clear_requests();
    let start = Instant::now();
    let r = cairn.fails(
        125,
        ["pull", "--tls-verify=false", "--retry", "2", &reference],
    );
    assert!(
        error_line(&r.stderr).contains("after 3 attempts"),
        "{}",
        r.stderr
    );
    assert_eq!(proxy.requests_matching("GET", "/manifests/").len(), 3);
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn basic_and_token_auth_with_login_logout_creds_and_docker_config() {
    for auth in [
        Auth::htpasswd("alice", "s3cret"),
        Auth::token("alice", "s3cret"),
    ] {
        let reg = Registry::start(RegistryOptions::default().with_auth(auth.clone())).unwrap();
        let dir = cairn_tests::util::temp_dir("img").unwrap();
        let img = small_image(dir.path(), "t", b"private");
        reg.push(&img.skopeo_ref, "private/app:1", &[]).unwrap();
        let mut cairn = Cairn::new().unwrap();
        let reference = format!("{}/private/app:1", reg.host());

        let r = cairn.fails(125, ["pull", "--tls-verify=false", &reference]);
        let line = error_line(&r.stderr);
        assert!(
            line.contains("access denied") && line.contains("cairn login"),
            "{auth:?}: {line}"
        );

        let r = cairn.fails(
            125,
            [
                "login",
                "--tls-verify=false",
                "-u",
                "alice",
                "-p",
                "wrong",
                reg.host(),
            ],
        );
        assert!(
            error_line(&r.stderr).contains("invalid username or password"),
            "{}",
            r.stderr
        );
        assert!(!cairn.auth_file().exists());

        let out = cairn.ok([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "s3cret",
            reg.host(),
        ]);
        assert!(out.contains("Login Succeeded"), "{out}");
        let file: Value = serde_json::from_slice(&fs::read(cairn.auth_file()).unwrap()).unwrap();
        assert_eq!(
            file["auths"][reg.host()]["auth"],
            "YWxpY2U6czNjcmV0",
            "base64(alice:s3cret)"
        );
        assert_eq!(
            fs::metadata(cairn.auth_file())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            cairn.ok(["login", "--get-login", reg.host()]).trim(),
            "alice"
        );
        cairn.ok(["pull", "--tls-verify=false", &reference]);
        if reg.token_realm().is_some() {
            let granted = reg.token_requests().iter().any(|t| {
                t.user.as_deref() == Some("alice")
                    && t.granted
                    && t.scopes
                        .iter()
                        .any(|s| s.contains("private/app") && s.contains("pull"))
            });
            assert!(granted, "{:?}", reg.token_requests());
        }

        assert!(cairn
            .ok(["logout", reg.host()])
            .contains("Removed login credentials"));
        cairn.ok(["rmi", &reference]);
        cairn.fails(125, ["pull", "--tls-verify=false", &reference]);
        cairn.ok([
            "pull",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            &reference,
        ]);
        cairn.ok(["rmi", &reference]);

        // Without --authfile/REGISTRY_AUTH_FILE, docker's config.json is read
        // too ($DOCKER_CONFIG), as podman does.
        let docker = cairn.scratch().join("docker");
        fs::create_dir_all(&docker).unwrap();
        fs::write(
            docker.join("config.json"),
            format!(
                r#"{{"auths":{{"http://{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
                reg.host()
            ),
        )
        .unwrap();
        cairn.env("DOCKER_CONFIG", docker.to_str().unwrap());
        cairn.unset_env("REGISTRY_AUTH_FILE");
        cairn.env(
            "XDG_RUNTIME_DIR",
            cairn.scratch().join("run").to_str().unwrap(),
        );
        cairn.ok(["pull", "--tls-verify=false", &reference]);
        cairn.assert_clean();
    }
}

#[test]
fn tls_registries_need_trust_or_tls_verify_false() {
    let reg = Registry::start(RegistryOptions::default().with_tls()).unwrap();
    let dir = cairn_tests::util::temp_dir("img").unwrap();
    let img = small_image(dir.path(), "t", b"tls");
    reg.push(&img.skopeo_ref, "secure:1", &[]).unwrap();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/secure:1", reg.host());
    let r = cairn.fails(125, ["pull", &reference]);
    let line = error_line(&r.stderr);
    assert!(
        line.contains("--tls-verify=false") && line.contains(reg.host()),
        "{line}"
    );
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    cairn.ok(["rmi", &reference]);
    // Trusting the registry's CA (podman's --cert-dir / certs.d) verifies for real.
    let cert_dir = reg.cert_dir().unwrap().to_str().unwrap().to_owned();
    cairn.ok(["pull", "--cert-dir", &cert_dir, &reference]);
    cairn.ok(["rmi", &reference]);
    // So does the user's SSL_CERT_DIR (cairn narrows it only for the
    // throw-away clients that verify nothing), alone or with a file.
    for file in [None, Some("/etc/ssl/certs/ca-certificates.crt")] {
        let mut own = Cairn::new().unwrap();
        own.env("SSL_CERT_DIR", &cert_dir);
        match file {
            Some(f) if Path::new(f).exists() => own.env("SSL_CERT_FILE", f),
            _ => own.unset_env("SSL_CERT_FILE"),
        }
        own.ok(["pull", "-q", &reference]);
        let mut other = Cairn::new().unwrap();
        other.env("SSL_CERT_DIR", wrong_ca_dir(&own).to_str().unwrap());
        other.unset_env("SSL_CERT_FILE");
        other.fails(125, ["pull", &reference]);
    }
    let wrong = cairn.scratch().join("other-ca");
    fs::create_dir(&wrong).unwrap();
    let r = cairn.fails(
        125,
        ["pull", "--cert-dir", wrong.to_str().unwrap(), &reference],
    );
    assert!(
        error_line(&r.stderr).contains("--tls-verify=false"),
        "{}",
        r.stderr
    );
    cairn
        .write_registries_conf(&format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.host()
        ))
        .unwrap();
    cairn.ok(["pull", &reference]);
    // --tls-verify=true overrides registries.conf.
    cairn.fails(125, ["pull", "--tls-verify=true", &reference]);

    // A plain-HTTP registry marked insecure needs no flag either.
    let plain = registry();
    plain.push(&img.skopeo_ref, "plain:1", &[]).unwrap();
    cairn
        .write_registries_conf(&format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            plain.host()
        ))
        .unwrap();
    cairn.ok(["pull", &format!("{}/plain:1", plain.host())]);
}

/// An empty directory of roots.
fn wrong_ca_dir(c: &Cairn) -> std::path::PathBuf {
    let d = c.scratch().join("no-ca");
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn short_names_resolve_through_search_registries() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let cairn = Cairn::new().unwrap();
    cairn
        .write_registries_conf(&format!(
            "unqualified-search-registries = [\"{h}\"]\n[[registry]]\nlocation = \"{h}\"\ninsecure = true\n",
            h = reg.host()
        ))
        .unwrap();
    let id = cairn.ok(["pull", "debian:bookworm"]);
    let full = format!("{}/debian:bookworm", reg.host());
    assert_eq!(cairn.refs(), vec![full.clone()]);
    // Local lookups by short name and by id prefix.
    cairn.ok(["image", "exists", "debian:bookworm"]);
    cairn.ok(["image", "exists", &id.trim()[..12]]);
    assert_eq!(cairn.run(["image", "exists", "alpine"]).code, 1);
    let inspect: Value = serde_json::from_str(&cairn.ok(["inspect", "debian:bookworm"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.trim());
    cairn.ok(["rmi", "debian:bookworm"]);
    assert!(cairn.refs().is_empty());
}

#[test]
fn imports_oci_layouts_and_archives_with_podman_names() {
    let cairn = Cairn::new().unwrap();
    // oci:DIR:REF — podman names it after the directory.
    let layout = fixtures::layout();
    let id = cairn.ok([
        "pull",
        &format!("oci:{}:{}", layout.display(), refs::DEBIAN_MIN),
    ]);
    let name = format!(
        "localhost{}:latest",
        layout.display().to_string().to_ascii_lowercase()
    );
    assert_eq!(cairn.refs(), vec![name]);
    assert_eq!(id.trim().len(), 64);
    cairn.assert_clean();

    // oci-archive:FILE:REF with two images: only the chosen one's blobs stay.
    let dir = cairn_tests::util::temp_dir("archive").unwrap();
    let lay = dir.path().join("lay");
    let a = small_image(&lay, "docker.io/library/first:1", b"first image");
    let b = small_image(&lay, "second", b"second image");
    let tar = dir.path().join("two.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&lay)
        .arg("-cf")
        .arg(&tar)
        .arg("."))
    .unwrap();
    let cairn = Cairn::new().unwrap();
    cairn.ok([
        "pull",
        &format!("oci-archive:{}:docker.io/library/first:1", tar.display()),
    ]);
    assert_eq!(cairn.refs(), vec!["docker.io/library/first:1".to_owned()]);
    let blobs = cairn.blobs();
    assert!(blobs.contains(&hex(&a.layer_digests[0]).to_owned()));
    assert!(
        !blobs.contains(&hex(&b.layer_digests[0]).to_owned()),
        "{blobs:?}"
    );
    cairn.ok(["pull", &format!("oci-archive:{}:second", tar.display())]);
    assert!(cairn.refs().contains(&"localhost/second:latest".to_owned()));
    cairn.assert_clean();

    // A corrupt blob in an archive is refused.
    let data = lay.join("blobs/sha256").join(hex(&b.layer_digests[0]));
    let mut bytes = fs::read(&data).unwrap();
    bytes[10] ^= 1;
    fs::set_permissions(&data, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&data, bytes).unwrap();
    let bad = dir.path().join("bad.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&lay)
        .arg("-cf")
        .arg(&bad)
        .arg("."))
    .unwrap();
    let cairn = Cairn::new().unwrap();
    let r = cairn.fails(
        125,
        ["pull", &format!("oci-archive:{}:second", bad.display())],
    );
    assert!(
        error_line(&r.stderr).contains("digest mismatch"),
        "{}",
        r.stderr
    );
    assert!(cairn.refs().is_empty() && cairn.blobs().is_empty());
}

#[test]
fn concurrent_pulls_of_overlapping_images_store_every_blob_once() {
    let reg = registry();
    push(&reg, refs::MULTI, "multi:1", &[]);
    push(&reg, refs::MULTI_SIBLING, "sibling:1", &[]);
    let proxy = FaultProxy::start(reg.host()).unwrap();
    // Slow blobs down so the pulls really overlap.
    proxy.add_rule(
        Rule::new(Action::Delay { ms: 200 })
            .path_contains("/blobs/")
            .times(1000),
    );
    let cairn = Cairn::new().unwrap();
    let names = [
        "multi:1",
        "sibling:1",
        "multi:1",
        "sibling:1",
        "multi:1",
        "sibling:1",
    ];
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            cairn
                .spawn([
                    "pull",
                    "--tls-verify=false",
                    &format!("{}/{n}", proxy.host()),
                ])
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each blob crossed the network at most once.
    let mut seen = BTreeSet::new();
    for p in blob_gets(&proxy) {
        assert!(seen.insert(p.clone()), "{p} fetched twice");
    }
    assert_eq!(cairn.blobs().len(), 9);
    assert_eq!(cairn.refs().len(), 2);
    cairn.assert_clean();
}

#[test]
fn kill_9_during_a_pull_then_the_same_pull_resumes_and_completes() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:1", &[]);
    let layer = layer_digests(&raw_manifest(&reg, "debian:1"))[0].clone();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    // The first download is cut after 5 MB; the resume attempt then hangs,
    // and the process is killed holding a partial file.
    proxy.add_rule(
        Rule::new(Action::Truncate {
            after_bytes: 5_000_000,
        })
        .method("GET")
        .path_contains(&layer)
        .times(1),
    );
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:1", proxy.host());
    let mut child = cairn
        .spawn([
            "pull",
            "--tls-verify=false",
            "--retry-delay",
            "2s",
            &reference,
        ])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.requests_matching("GET", &layer).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", proxy.requests());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Only the resume request hangs: a rule added now applies to later requests.
    proxy.add_rule(
        Rule::new(Action::Delay { ms: 60_000 })
            .method("GET")
            .path_contains(&layer)
            .times(1),
    );
    while proxy.requests_matching("GET", &layer).len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", proxy.requests());
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partials = cairn.temp_files();
    assert_eq!(partials, vec![format!("sha256-{}.partial", hex(&layer))]);
    let size = fs::metadata(cairn.root().join("tmp").join(&partials[0]))
        .unwrap()
        .len();
    // What reached the disk before the kill (the writer buffers up to 1 MiB).
    assert!(size >= 3_000_000, "{size}");
    assert!(
        cairn.refs().is_empty(),
        "no ref before the blobs are complete"
    );
    cairn.assert_clean();

    proxy.clear_requests();
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    let gets = proxy.requests_matching("GET", &layer);
    assert_eq!(gets.len(), 1);
    assert_eq!(
        gets[0].range.as_deref(),
        Some(format!("bytes={size}-").as_str())
    );
    assert!(cairn.temp_files().is_empty());
    cairn.assert_clean();

    // Killed at random moments, again and again: never a broken store.
    for i in 0..6u64 {
        let cairn = Cairn::new().unwrap();
        let mut child = cairn
            .spawn([
                "pull",
                "--tls-verify=false",
                &format!("{}/debian:1", reg.host()),
            ])
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + i * 60));
        let _ = child.kill();
        child.wait().unwrap();
        cairn.assert_clean();
        cairn.ok([
            "pull",
            "--tls-verify=false",
            &format!("{}/debian:1", reg.host()),
        ]);
        cairn.assert_clean();
        assert!(cairn.temp_files().is_empty());
    }
}

#[test]
fn rmi_tag_prune_and_dangling_images_behave_like_podman() {
    let reg = registry();
    push(&reg, refs::MULTI, "multi:1", &[]);
    push(&reg, refs::MULTI_SIBLING, "sibling:1", &[]);
    let cairn = Cairn::new().unwrap();
    let multi = format!("{}/multi:1", reg.host());
    let sibling = format!("{}/sibling:1", reg.host());
    let id = cairn
        .ok(["pull", "-q", "--tls-verify=false", &multi])
        .trim()
        .to_owned();
    cairn.ok(["pull", "-q", "--tls-verify=false", &sibling]);
    cairn.ok(["tag", &multi, "extra:2"]);
    assert!(cairn.refs().contains(&"localhost/extra:2".to_owned()));

    let r = cairn.fails(125, ["rmi", &id[..12]]);
    assert!(
        error_line(&r.stderr).contains("more than one tag"),
        "{}",
        r.stderr
    );
    assert_eq!(
        cairn.ok(["rmi", "extra:2"]).trim(),
        "Untagged: localhost/extra:2"
    );
    let out = cairn.ok(["rmi", &multi]);
    assert_eq!(out, format!("Untagged: {multi}\nDeleted: {id}\n"));
    // The sibling keeps the three shared layers: 4 layers + config + manifest left.
    assert_eq!(cairn.blobs().len(), 6);
    let r = cairn.fails(1, ["rmi", "nonexistent:1"]);
    assert!(error_line(&r.stderr).contains("nonexistent:1: image not known"));
    cairn.ok(["rmi", "-i", "nonexistent:1"]);

    // Re-pointing a tag leaves the old image dangling, as in podman.
    push(&reg, refs::MULTI, "sibling:1", &[]);
    let old_id = cairn.ok(["images", "-q", &sibling]).trim().to_owned();
    cairn.ok(["pull", "--tls-verify=false", &sibling]);
    let images = cairn.ok(["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(&old_id)),
        "{images}"
    );
    assert_eq!(
        cairn
            .ok(["images", "-q", "--filter", "dangling=true"])
            .trim(),
        old_id
    );
    let pruned = cairn.ok(["image", "prune", "-f"]);
    assert!(pruned.contains(&old_id), "{pruned}");
    assert!(!cairn.ok(["images"]).contains("<none>"));
    assert_eq!(cairn.blobs().len(), 6, "{:?}", cairn.blobs());
    cairn.ok(["rmi", "-a"]);
    assert!(cairn.blobs().is_empty());
    cairn.assert_clean();
}

#[test]
fn images_inspect_and_df_output_formats() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let manifest_digest = reg.manifest_digest("debian:bookworm").unwrap();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/debian:bookworm", reg.host());
    let id = cairn
        .ok(["pull", "-q", "--tls-verify=false", &reference])
        .trim()
        .to_owned();

    assert_eq!(cairn.ok(["images", "-q"]).trim(), &id[..12]);
    assert_eq!(
        cairn.ok(["images", "-q", "--no-trunc"]).trim(),
        format!("sha256:{id}")
    );
    let digests = cairn.ok(["images", "--digests"]);
    assert!(digests.lines().next().unwrap().contains("DIGEST"));
    assert!(digests.contains(&manifest_digest), "{digests}");
    assert_eq!(cairn.ok(["images", "--noheading"]).lines().count(), 1);

    let json: Value = serde_json::from_str(&cairn.ok(["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["Id"], id.as_str());
    assert_eq!(json[0]["Names"][0], reference.as_str());
    assert_eq!(json[0]["Digest"], manifest_digest.as_str());

    let inspect_text = cairn.ok(["image", "inspect", &reference]);
    assert!(
        inspect_text.starts_with("[\n     {\n          \"Id\""),
        "podman's 5-space indent"
    );
    let inspect: Value = serde_json::from_str(&inspect_text).unwrap();
    let config: Value =
        serde_json::from_slice(&fs::read(cairn.root().join("blobs/sha256").join(&id)).unwrap())
            .unwrap();
    assert_eq!(inspect[0]["RootFS"]["Layers"], config["rootfs"]["diff_ids"]);
    assert_eq!(inspect[0]["RepoTags"][0], reference.as_str());
    assert_eq!(inspect[0]["Config"], config["config"]);
    assert_eq!(
        inspect[0]["RepoDigests"][0],
        format!("{}/debian@{manifest_digest}", reg.host()).as_str()
    );
    // Go templates, as podman runs them.
    let env = cairn.ok([
        "inspect",
        "--format",
        r#"{{.Id}} {{len .RootFS.Layers}} {{range .Config.Env}}{{if and (ge (len .) 5) (eq (slice . 0 5) "PATH=")}}{{slice . 5 | printf "%q"}}{{end}}{{end}}"#,
        &reference,
    ]);
    assert_eq!(
        env,
        format!("{id} 1 \"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n")
    );
    let table = cairn.ok([
        "images",
        "--format",
        "table {{.ID}}\\t{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(
        table,
        format!("IMAGE ID      REPOSITORY:TAG\n{}  {reference}\n", &id[..12])
    );
    let r = cairn.fails(125, ["inspect", "--format", "{{.Id", &reference]);
    assert!(
        error_line(&r.stderr).starts_with("Error: template: inspect:"),
        "{}",
        r.stderr
    );
    let r = cairn.fails(125, ["inspect", "nothing-here"]);
    assert!(error_line(&r.stderr).contains("no such object"));

    let df = cairn.ok(["system", "df"]);
    let images_row = df.lines().nth(1).unwrap();
    assert!(
        images_row.starts_with("Images") && images_row.contains(" 1 "),
        "{df}"
    );
    let df_json: Value =
        serde_json::from_str(&cairn.ok(["system", "df", "--format", "json"])).unwrap();
    let stored: u64 = cairn
        .blobs()
        .iter()
        .map(|b| {
            fs::metadata(cairn.root().join("blobs/sha256").join(b))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(df_json[0]["StoredSize"], stored);
}

#[test]
fn images_table_matches_podman_for_the_same_image() {
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:bookworm", &[]);
    let reference = format!("{}/debian:bookworm", reg.host());
    let cairn = Cairn::new().unwrap();
    cairn.ok(["pull", "-q", "--tls-verify=false", &reference]);
    let podman_root = cairn.scratch().join("podman");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(podman_root.join("root"))
            .arg("--runroot")
            .arg(podman_root.join("run"));
        c.arg("--storage-driver").arg("vfs");
        c.args(args);
        run(&mut c).unwrap()
    };
    podman(&["pull", "-q", "--tls-verify=false", &reference]);
    // Same rows, same columns, same ids and digests; SIZE differs (podman
    // counts unpacked bytes, cairn stored blobs until the unpacker lands).
    let cols = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.trim().is_empty())
                    .map(|c| c.trim().to_owned())
                    .take(4)
                    .collect()
            })
            .collect()
    };
    let ours = cairn.ok(["images", "--digests"]);
    let theirs = podman(&["images", "--digests"]);
    assert_eq!(
        cols(&ours),
        cols(&theirs),
        "\ncairn:\n{ours}\npodman:\n{theirs}"
    );
    let pj: Value = serde_json::from_str(&podman(&["images", "--format", "json"])).unwrap();
    let cj: Value = serde_json::from_str(&cairn.ok(["images", "--format", "json"])).unwrap();
    for key in [
        "Id",
        "Digest",
        "RepoDigests",
        "Names",
        "Created",
        "CreatedAt",
        "Labels",
    ] {
        assert_eq!(cj[0][key], pj[0][key], "{key}");
    }
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&cj[0]), keys(&pj[0]));
    let pi: Value = serde_json::from_str(&podman(&["image", "inspect", &reference])).unwrap();
    let ci: Value = serde_json::from_str(&cairn.ok(["image", "inspect", &reference])).unwrap();
    assert_eq!(keys(&ci[0]), keys(&pi[0]));
    for key in [
        "Id",
        "Digest",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Config",
        "Architecture",
        "Os",
        "RootFS",
        "ManifestType",
        "History",
        "User",
        "Author",
    ] {
        assert_eq!(ci[0][key], pi[0][key], "{key}");
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_leaves_the_store_as_it_was() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let reg = registry();
    push(&reg, refs::DEBIAN_MIN, "debian:1", &[]);
    let dir = cairn_tests::util::temp_dir("full").unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt))
    .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&mnt);
    let mut cairn = Cairn::new().unwrap();
    cairn.set_root(&mnt.join("store"));
    let r = cairn.fails(
        125,
        [
            "pull",
            "--tls-verify=false",
            &format!("{}/debian:1", reg.host()),
        ],
    );
    let line = error_line(&r.stderr);
    assert!(
        line.contains("No space left on device") && line.contains("free some space"),
        "{line}"
    );
    assert!(
        line.contains(&mnt.display().to_string()),
        "names the path: {line}"
    );
    assert!(cairn.refs().is_empty() && cairn.blobs().is_empty() && cairn.temp_files().is_empty());
    cairn.assert_clean();
}

#[test]
fn system_check_finds_and_repairs_corruption() {
    let reg = registry();
    let dir = cairn_tests::util::temp_dir("img").unwrap();
    let img = small_image(dir.path(), "t", b"will be corrupted");
    reg.push(&img.skopeo_ref, "app:1", &[]).unwrap();
    let cairn = Cairn::new().unwrap();
    let reference = format!("{}/app:1", reg.host());
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    cairn.assert_clean();
    let blob = cairn
        .root()
        .join("blobs/sha256")
        .join(hex(&img.layer_digests[0]));
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, b"garbage").unwrap();
    let r = cairn.fails(1, ["system", "check"]);
    assert!(
        r.stdout
            .contains(&format!("corrupt blob: {}", img.layer_digests[0])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("broken image: {reference}")),
        "{}",
        r.stdout
    );
    let out = cairn.ok(["system", "check", "--repair"]);
    assert!(out.contains(&format!("cairn pull {reference}")), "{out}");
    cairn.assert_clean();
    assert!(cairn.refs().is_empty());
    cairn.ok(["pull", "--tls-verify=false", &reference]);
    cairn.assert_clean();
}
