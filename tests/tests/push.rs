//! End-to-end: `cairn push` to a real registry (CNCF distribution), plain,
//! TLS, htpasswd and token auth, through the fault proxy; what it pushed is
//! pulled back by cairn, skopeo and podman and compared by digest.

use std::time::{Duration, Instant};

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::util::{is_root, skopeo};
use cairn_tests::{Action, Auth, Cairn, FaultProxy, Registry, RegistryOptions, Rule};
use serde_json::Value;

fn registry(options: RegistryOptions) -> Registry {
    Registry::start(options).expect("registry starts")
}

/// The stored manifest digest of `image` in `cairn`.
fn stored_digest(cairn: &Cairn, image: &str) -> String {
    cairn
        .ok(["image", "inspect", "--format", "{{.Digest}}", image])
        .trim()
        .to_owned()
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect()
}

/// Bytes sent to blob uploads (PATCH and PUT bodies) through `proxy`.
fn upload_bytes(proxy: &FaultProxy) -> u64 {
    proxy
        .requests()
        .iter()
        .filter(|r| {
            matches!(r.method.as_str(), "PATCH" | "PUT") && r.path.contains("/blobs/uploads/")
        })
        .map(|r| r.content_length.unwrap_or(0))
        .sum()
}

fn uploads(proxy: &FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| {
            matches!(r.method.as_str(), "PATCH" | "PUT") && r.path.contains("/blobs/uploads/")
        })
        .count()
}

fn media_type(reg: &Registry, repo_ref: &str) -> (String, Value) {
    let m = reg.manifest(repo_ref).expect("manifest");
    let v: Value = serde_json::from_slice(&m.bytes).expect("JSON");
    (m.media_type, v)
}

#[test]
fn pushes_what_it_pulled_and_peers_pull_it_back_with_the_same_digest() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/lib/debian:1", reg.host());
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let digest = stored_digest(&cairn, &name);
    let digestfile = cairn.scratch().join("digest");
    let r = cairn.run([
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &name,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Getting image source signatures"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Copying blob 3f3fb07977e6"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Writing manifest to image destination"),
        "{}",
        r.stderr
    );
    let pushed = std::fs::read_to_string(&digestfile).unwrap();
    assert_eq!(pushed, reg.manifest_digest("lib/debian:1").unwrap());
    assert_eq!(pushed, digest, "the stored manifest goes out byte for byte");

    // skopeo reads it back.
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], pushed.as_str());

    // podman pulls it with its own root.
    let podman = Podman::new().unwrap();
    podman.ok(["pull", "-q", "--tls-verify=false", &name]);
    let pd = podman.ok(["image", "inspect", "--format", "{{.Digest}} {{.Id}}", &name]);
    assert_eq!(pd.trim(), format!("{pushed} {id}"));

    // cairn pulls it into another store.
    let other = Cairn::new().unwrap();
    let back = other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(back.trim(), id);
    assert_eq!(stored_digest(&other, &name), pushed);
    other.ok(["run", "--rm", &name, "true"]);

    // A second push (through a counting proxy) uploads nothing.
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let via = format!("{}/lib/debian:1", proxy.host());
    cairn.ok(["tag", &name, &via]);
    cairn.ok(["push", "--tls-verify=false", &via]);
    assert_eq!(uploads(&proxy), 0, "{:#?}", proxy.requests());
    assert!(proxy
        .requests_matching("POST", "/blobs/uploads/")
        .is_empty());

    // Another repository of the same registry: mounted, not uploaded.
    proxy.clear_requests();
    let second = format!("{}/other/debian:2", proxy.host());
    cairn.ok(["push", "--tls-verify=false", &via, &second]);
    let posts = proxy.requests_matching("POST", "/blobs/uploads/");
    assert_eq!(posts.len(), 2, "config and layer mounted: {posts:#?}");
    assert!(posts.iter().all(
        |p| p.query.as_deref().unwrap_or("").contains("from=lib/debian") && p.status == Some(201)
    ));
    assert_eq!(uploads(&proxy), 0);
    assert_eq!(reg.manifest_digest("other/debian:2").unwrap(), pushed);

    // A registry that ignores the mount (202: a plain upload) still gets it.
    proxy.clear_requests();
    proxy.add_rule(
        Rule::new(Action::StripQuery)
            .method("POST")
            .path_contains("/blobs/uploads/"),
    );
    let third = format!("{}/third/debian:3", proxy.host());
    cairn.ok(["push", "--tls-verify=false", &via, &third]);
    assert!(uploads(&proxy) >= 2, "{:#?}", proxy.requests());
    assert_eq!(reg.manifest_digest("third/debian:3").unwrap(), pushed);
    cairn.assert_clean();
}

#[test]
fn pushes_through_server_errors_and_resumes_a_dropped_upload() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let mut cairn = Cairn::new().unwrap();
    let name = format!("{}/faults/debian:1", proxy.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let digest = stored_digest(&cairn, &name);
    let chunk: u64 = 8 << 20;
    cairn.env("CAIRN_PUSH_CHUNK_SIZE", &chunk.to_string());
    proxy.add_rule(Rule::new(Action::status(503)).method("HEAD").times(1));
    proxy.add_rule(Rule::new(Action::status(500)).method("POST").times(1));
    // The second chunk is cut 3 MiB in; the fourth gets a 502.
    proxy.add_rule(
        Rule::new(Action::DropRequestBody {
            after_bytes: 3 << 20,
        })
        .method("PATCH")
        .skip(1)
        .times(1),
    );
    proxy.add_rule(
        Rule::new(Action::status(502))
            .method("PATCH")
            .skip(3)
            .times(1),
    );
    let r = cairn.run(["push", "--tls-verify=false", "--retry-delay", "50ms", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reg.manifest_digest("faults/debian:1").unwrap(), digest);
    // The debian-min layer and config.
    let size: u64 = 48_614_342 + 421;
    let sent = upload_bytes(&proxy);
    assert!(sent > size, "a chunk was sent again: {sent}");
    assert!(
        sent - size < size,
        "resumed, not restarted: {sent} bytes for a {size}-byte layer"
    );
    assert!(
        sent - size <= 2 * chunk,
        "only the failed chunks went twice: {sent}"
    );
    let status_gets = proxy
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.contains("/blobs/uploads/"))
        .count();
    assert!(
        status_gets >= 1,
        "asked the registry where the upload stood"
    );
    // The layer pulls back whole.
    let other = Cairn::new().unwrap();
    other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(stored_digest(&other, &name), digest);
}

#[test]
fn a_registry_that_claims_blobs_it_lacks_gets_them_anyway() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/liar/debian:1", proxy.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let digest = stored_digest(&cairn, &name);
    proxy.add_rule(
        Rule::new(Action::status(200))
            .method("HEAD")
            .path_contains("/blobs/"),
    );
    let r = cairn.run(["push", "--tls-verify=false", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("rejected") || r.stderr.contains("refused the manifest"),
        "{}",
        r.stderr
    );
    assert_eq!(reg.manifest_digest("liar/debian:1").unwrap(), digest);
    assert!(uploads(&proxy) >= 2);
}

#[test]
fn rejected_manifests_and_bad_destinations_fail_in_one_line_with_125() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/rejected/debian:1", proxy.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    proxy.add_rule(
        Rule::new(Action::Status {
            code: 400,
            retry_after: None,
            body: r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"no"}]}"#.into(),
        })
        .method("PUT")
        .path_contains("/manifests/"),
    );
    let r = cairn.fails(125, ["push", "--tls-verify=false", &name]);
    let errors = error_lines(&r.stderr);
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(
        errors[0].contains("rejected the manifest: MANIFEST_INVALID: manifest invalid"),
        "{}",
        errors[0]
    );
    assert!(
        reg.manifest("rejected/debian:1").is_err(),
        "nothing at the tag"
    );

    for (args, want) in [
        (
            vec!["push", &name, "ftp://example.com/x"],
            "unsupported destination transport",
        ),
        (
            vec!["push", &name, "containers-storage:x"],
            "unsupported destination transport",
        ),
        (
            vec!["push", "nosuch/image:1", "127.0.0.1:1/x:1"],
            "nothing to push",
        ),
        (
            vec!["push", "--format", "v2s1", &name],
            "cairn does not support --format v2s1",
        ),
        (
            vec!["push", "--sign-by", "me", &name],
            "cairn does not support --sign-by",
        ),
    ] {
        let r = cairn.fails(125, &args);
        let errors = error_lines(&r.stderr);
        assert_eq!(errors.len(), 1, "{args:?}: {}", r.stderr);
        assert!(errors[0].contains(want), "{args:?}: {}", errors[0]);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    cairn.assert_clean();
}

#[test]
fn pushes_to_tls_htpasswd_and_token_registries() {
    assert!(is_root(), "run as root");
    for (what, options) in [
        ("tls", RegistryOptions::default().with_tls()),
        (
            "htpasswd",
            RegistryOptions::default()
                .with_tls()
                .with_auth(Auth::htpasswd("pusher", "s3cret")),
        ),
        (
            "token",
            RegistryOptions::default()
                .with_tls()
                .with_auth(Auth::token("pusher", "s3cret")),
        ),
    ] {
        let reg = registry(options);
        let cairn = Cairn::new().unwrap();
        let name = format!("{}/auth/debian:1", reg.host());
        cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
        let digest = stored_digest(&cairn, &name);
        let cert_dir = reg.cert_dir().unwrap().to_str().unwrap().to_owned();
        let mut args = vec!["push".to_owned(), "--cert-dir".into(), cert_dir.clone()];
        if let Some((u, p)) = reg.credentials() {
            // Without credentials: refused, and told to log in.
            let r = cairn.fails(125, ["push", "--cert-dir", &cert_dir, &name]);
            assert!(r.stderr.contains("cairn login"), "{what}: {}", r.stderr);
            assert_eq!(error_lines(&r.stderr).len(), 1, "{what}: {}", r.stderr);
            args.extend(["--creds".into(), format!("{u}:{p}")]);
        }
        args.push(name.clone());
        let r = cairn.run(&args);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(
            reg.manifest_digest("auth/debian:1").unwrap(),
            digest,
            "{what}"
        );
        let dir = tempfile::tempdir().unwrap();
        reg.pull(
            "auth/debian:1",
            &format!("oci:{}:x", dir.path().display()),
            &[],
        )
        .unwrap_or_else(|e| panic!("{what}: skopeo pulls it back: {e:#}"));
        // Another repository: its blobs are mounted from the first (with
        // a token, one that may pull from there too).
        let mut again = args.clone();
        again.push(format!("{}/auth2/debian:1", reg.host()));
        let r = cairn.run(&again);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(
            reg.manifest_digest("auth2/debian:1").unwrap(),
            digest,
            "{what}"
        );
        let log = reg.log();
        let mounts = log
            .lines()
            .filter(|l| l.contains("from=auth%2Fdebian") || l.contains("from=auth/debian"))
            .filter(|l| l.contains("status=201"))
            .count();
        assert_eq!(mounts, 2, "{what}: config and layer mounted");
        if what == "token" {
            let scopes: Vec<String> = reg
                .token_requests()
                .into_iter()
                .flat_map(|t| t.scopes)
                .collect();
            assert!(
                scopes
                    .iter()
                    .any(|s| s == "repository:auth/debian:pull,push"),
                "{scopes:?}"
            );
            assert!(
                scopes
                    .iter()
                    .any(|s| s == "repository:auth2/debian:pull,push"),
                "{scopes:?}"
            );
            assert!(
                scopes.iter().any(|s| s == "repository:auth/debian:pull"),
                "{scopes:?}"
            );
        }
    }
}

#[test]
fn format_v2s2_pushes_docker_media_types_that_peers_pull() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/fmt/debian:oci", reg.host());
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let dest = format!("{}/fmt/debian:v2s2", reg.host());
    let digestfile = cairn.scratch().join("digest");
    cairn.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--format",
        "v2s2",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &name,
        &format!("docker://{dest}"),
    ]);
    let (mt, v) = media_type(&reg, "fmt/debian:v2s2");
    assert_eq!(mt, "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(
        std::fs::read_to_string(&digestfile).unwrap(),
        reg.manifest_digest("fmt/debian:v2s2").unwrap()
    );
    let podman = Podman::new().unwrap();
    podman.ok(["pull", "-q", "--tls-verify=false", &dest]);
    let pid = podman.ok(["image", "inspect", "--format", "{{.Id}}", &dest]);
    assert_eq!(pid.trim(), id, "same config, same image id");
    let dir = tempfile::tempdir().unwrap();
    reg.pull(
        "fmt/debian:v2s2",
        &format!("oci:{}:x", dir.path().display()),
        &[],
    )
    .unwrap();
    // And back to OCI from the docker one.
    cairn.ok(["pull", "-q", "--tls-verify=false", &dest]);
    cairn.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--format",
        "oci",
        &dest,
        &format!("{}/fmt/debian:back", reg.host()),
    ]);
    let (mt, _) = media_type(&reg, "fmt/debian:back");
    assert_eq!(mt, "application/vnd.oci.image.manifest.v1+json");
}

#[test]
fn kill_9_during_a_push_leaves_no_manifest_and_a_clean_store() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let mut cairn = Cairn::new().unwrap();
    let name = format!("{}/killed/debian:1", proxy.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    cairn.env("CAIRN_PUSH_CHUNK_SIZE", &(4u64 << 20).to_string());
    // Slow PATCHes: the push is mid-upload for seconds.
    proxy.add_rule(Rule::new(Action::Delay { ms: 300 }).method("PATCH"));
    let mut child = cairn
        .spawn(["push", "-q", "--tls-verify=false", &name])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.requests_matching("PATCH", "/blobs/uploads/").len() < 3 {
        assert!(Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        reg.manifest("killed/debian:1").is_err(),
        "no manifest at the tag"
    );
    assert!(proxy.requests_matching("PUT", "/manifests/").is_empty());
    cairn.assert_clean();
    // A push afterwards completes.
    proxy.clear_rules();
    cairn.ok(["push", "-q", "--tls-verify=false", &name]);
    assert_eq!(
        reg.manifest_digest("killed/debian:1").unwrap(),
        stored_digest(&cairn, &name)
    );
}

#[test]
fn compression_format_zstd_pushes_zstd_layers_that_cairn_pulls_back_and_runs() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/comp/debian:gzip", reg.host());
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let dest = format!("{}/comp/debian:zstd", reg.host());
    let push_zstd = |tag: &str| {
        let digestfile = cairn.scratch().join("digest");
        cairn.ok([
            "push",
            "-q",
            "--tls-verify=false",
            "--compression-format",
            "zstd",
            "--digestfile",
            digestfile.to_str().unwrap(),
            &name,
            tag,
        ]);
        std::fs::read_to_string(&digestfile).unwrap()
    };
    let first = push_zstd(&dest);
    let (_, v) = media_type(&reg, "comp/debian:zstd");
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let zstd_layer = v["layers"][0]["digest"].as_str().unwrap().to_owned();
    assert_ne!(
        zstd_layer,
        "sha256:3f3fb07977e6a45cbdc854de732447074cb94092a2e1f54d374b7240d40bfdf3"
    );
    // The zstd blob is in the store; a second push makes no other.
    let blobs = cairn.blobs();
    assert!(
        blobs.contains(&zstd_layer["sha256:".len()..].to_owned()),
        "{blobs:?}"
    );
    let second = push_zstd(&format!("{}/comp/debian:zstd2", reg.host()));
    assert_eq!(first, second, "the same zstd layer again");
    assert_eq!(cairn.blobs(), blobs);
    cairn.assert_clean();

    // cairn pulls it back: same config (diff ids), and it runs.
    let other = Cairn::new().unwrap();
    let back = other.ok(["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(back.trim(), id, "same config, same diff ids");
    // Every file's path, size, mode, owner and contents (no times: the
    // runtime writes some under /etc).
    let tree = "find /usr /etc/apt -xdev -printf '%p %s %m %U %l\\n' | sort | md5sum; find /usr -xdev -type f | sort | xargs md5sum | md5sum";
    let a = cairn.ok(["run", "--rm", &name, "sh", "-c", tree]);
    let b = other.ok(["run", "--rm", &dest, "sh", "-c", tree]);
    assert_eq!(a, b, "same tree");

    // A zstd image pushed as v2s2 goes out gzip-compressed; podman pulls it.
    let zname = format!("{}/comp/debian:fromzstd", reg.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN_ZSTD, &zname);
    let v2 = format!("{}/comp/debian:v2s2", reg.host());
    cairn.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--format",
        "v2s2",
        &zname,
        &v2,
    ]);
    let (mt, v) = media_type(&reg, "comp/debian:v2s2");
    assert_eq!(mt, "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let podman = Podman::new().unwrap();
    podman.ok(["pull", "-q", "--tls-verify=false", &v2]);
    let r = cairn.fails(
        125,
        [
            "push",
            "--tls-verify=false",
            "--format",
            "v2s2",
            "--compression-format",
            "zstd",
            &zname,
            &v2,
        ],
    );
    assert!(
        error_lines(&r.stderr)[0].contains("cannot carry zstd layers"),
        "{}",
        r.stderr
    );
    cairn.assert_clean();
}

#[test]
fn rootless_push_round_trips_with_the_same_digest() {
    let reg = registry(RegistryOptions::default().with_auth(Auth::htpasswd("pusher", "s3cret")));
    let c = Cairn::rootless().expect("rootless environment");
    let name = format!("{}/rootless/debian:1", reg.host());
    let id = c.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let digest = stored_digest(&c, &name);
    // Credentials from `cairn login`'s auth file, not --creds.
    let r = c.fails(125, ["push", "--tls-verify=false", &name]);
    assert!(r.stderr.contains("cairn login"), "{}", r.stderr);
    c.ok([
        "login",
        "--tls-verify=false",
        "-u",
        "pusher",
        "-p",
        "s3cret",
        reg.host(),
    ]);
    c.ok(["push", "-q", "--tls-verify=false", &name]);
    assert_eq!(reg.manifest_digest("rootless/debian:1").unwrap(), digest);
    let other = Cairn::rootless().unwrap();
    other.ok([
        "login",
        "--tls-verify=false",
        "-u",
        "pusher",
        "-p",
        "s3cret",
        reg.host(),
    ]);
    let back = other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(back.trim(), id);
    c.assert_clean();
}

#[test]
fn compression_format_gzip_keeps_gzip_layers_unless_forced() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let cairn = Cairn::new().unwrap();
    let name = format!("{}/comp/debian:gzip", reg.host());
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    // gzip asked of a gzip image: as stored; with --force-compression: a
    // fresh gzip blob of the same tar.
    let stored = stored_digest(&cairn, &name);
    let same = format!("{}/comp/debian:same", reg.host());
    cairn.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--compression-format",
        "gzip",
        &name,
        &same,
    ]);
    assert_eq!(reg.manifest_digest("comp/debian:same").unwrap(), stored);
    let forced = format!("{}/comp/debian:forced", reg.host());
    cairn.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--compression-format",
        "gzip",
        "--force-compression",
        &name,
        &forced,
    ]);
    let (_, v) = media_type(&reg, "comp/debian:forced");
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_ne!(reg.manifest_digest("comp/debian:forced").unwrap(), stored);
    let again = Cairn::new().unwrap();
    assert_eq!(
        again
            .ok(["pull", "-q", "--tls-verify=false", &forced])
            .trim(),
        id
    );

    cairn.assert_clean();
}

#[test]
fn an_upload_cut_after_the_registry_kept_part_of_a_chunk_still_completes() {
    assert!(is_root(), "run as root");
    let reg = registry(RegistryOptions::default());
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let mut cairn = Cairn::new().unwrap();
    let name = format!("{}/cut/debian:1", proxy.host());
    cairn.pull_fixture_as(refs::DEBIAN_MIN, &name);
    let digest = stored_digest(&cairn, &name);
    cairn.env("CAIRN_PUSH_CHUNK_SIZE", &(8u64 << 20).to_string());
    // distribution writes the 3 MiB it got into the upload, which then no
    // longer matches the upload's state: it cancels the upload (cairn
    // starts another) or reports where it stands (cairn resumes there).
    let rule = proxy.add_rule(
        Rule::new(Action::CutRequestBody {
            after_bytes: 3 << 20,
        })
        .method("PATCH")
        .skip(2)
        .times(1),
    );
    let r = cairn.run(["push", "--tls-verify=false", "--retry-delay", "50ms", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(proxy.rule_hits(rule), 1);
    // distribution 2.8 cancels such an upload (its file no longer matches
    // the upload's state): the status GET finds it gone and cairn starts
    // another for that layer.
    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.contains("/blobs/uploads/"))
        .map(|q| q.status)
        .collect();
    assert_eq!(gets, [Some(404)]);
    assert_eq!(proxy.requests_matching("POST", "/blobs/uploads/").len(), 3);
    assert_eq!(reg.manifest_digest("cut/debian:1").unwrap(), digest);
    let other = Cairn::new().unwrap();
    other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(stored_digest(&other, &name), digest);
}
