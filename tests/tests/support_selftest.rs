//! Tests of the test-support crate itself, against the real registry, skopeo and openssl.
//! Each test starts its own servers; they run in parallel.

use std::time::{Duration, Instant};

use cairn_tests::image::tagged_digest;
use cairn_tests::util::{self, http_get, sha256_digest};
use cairn_tests::{
    Action, Auth, BuiltImage, FaultProxy, ImageSpec, OciLayout, Platform, Registry,
    RegistryOptions, Rule,
};

const LAYER_FILE: &[u8] = b"hello from cairn-tests\n";

/// A one-layer image in a fresh OCI layout (kept alive by the returned guard).
fn fixture() -> (tempfile::TempDir, BuiltImage) {
    let dir = util::temp_dir("fixture").unwrap();
    let image = OciLayout::create(dir.path())
        .unwrap()
        .add_image(
            "t",
            &ImageSpec::new().layer(&[("etc/hello", LAYER_FILE), ("bin/true", b"#!/bin/sh\n")]),
        )
        .unwrap();
    (dir, image)
}

fn assert_skopeo_fails(args: &[&str], expect_in_stderr: &[&str]) {
    let out = util::skopeo_output(args).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "skopeo {args:?} succeeded");
    assert!(
        expect_in_stderr.iter().any(|s| stderr.contains(s)),
        "skopeo {args:?} failed without any of {expect_in_stderr:?}:\n{stderr}"
    );
}

#[test]
fn plain_registry_push_pull_roundtrip() {
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    assert!(reg.host().starts_with("127.0.0.1:"));
    let (_src, image) = fixture();
    reg.push(&image.skopeo_ref, "cairn/hello:1", &[]).unwrap();

    // The registry serves exactly the manifest we built.
    assert_eq!(
        reg.manifest_digest("cairn/hello:1").unwrap(),
        image.manifest_digest
    );
    let manifest = reg.manifest("cairn/hello:1").unwrap();
    assert_eq!(
        manifest.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        reg.manifest_digest(&format!("cairn/hello@{}", image.manifest_digest))
            .unwrap(),
        image.manifest_digest
    );

    // The blob is where blob_data_path says, byte for byte.
    let layer = &image.layer_digests[0];
    let data = std::fs::read(reg.blob_data_path(layer)).unwrap();
    assert_eq!(&sha256_digest(&data), layer);

    // Pull it back into a fresh layout.
    let dest = util::temp_dir("pulled").unwrap();
    let dest_ref = format!("oci:{}:back", dest.path().display());
    util::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/cairn/hello:1", reg.host()),
        &dest_ref,
    ])
    .unwrap();
    assert_eq!(tagged_digest(dest.path(), "back"), image.manifest_digest);
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(dest.path().join("blobs/sha256").join(hex).is_file());

    assert!(reg.log().contains("listening on"), "{}", reg.log());
}

#[test]
fn registry_process_is_reaped_on_drop() {
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    let host = reg.host().to_owned();
    let storage = reg.storage_dir().to_owned();
    assert!(storage.is_dir());
    drop(reg);
    assert!(
        std::net::TcpStream::connect(&host).is_err(),
        "{host} still accepts"
    );
    assert!(
        !storage.exists(),
        "temp dir {} left behind",
        storage.display()
    );
}

#[test]
fn multi_platform_index_pushes_with_all() {
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    let dir = util::temp_dir("index").unwrap();
    let index = OciLayout::create(dir.path())
        .unwrap()
        .add_index(
            "multi",
            &[
                ImageSpec::new()
                    .platform(Platform::linux("amd64", None))
                    .layer(&[("arch", b"amd64")]),
                ImageSpec::new()
                    .platform(Platform::linux("arm64", Some("v8")))
                    .layer(&[("arch", b"arm64")]),
            ],
        )
        .unwrap();
    reg.push(&index.skopeo_ref, "cairn/multi:1", &["--all"])
        .unwrap();
    let served = reg.manifest("cairn/multi:1").unwrap();
    assert_eq!(served.digest, index.index_digest);
    assert_eq!(served.media_type, "application/vnd.oci.image.index.v1+json");
    for image in &index.images {
        assert_eq!(
            reg.manifest_digest(&format!("cairn/multi@{}", image.manifest_digest))
                .unwrap(),
            image.manifest_digest
        );
    }
}

#[test]
fn htpasswd_auth_rejects_wrong_password() {
    let reg =
        Registry::start(RegistryOptions::default().with_auth(Auth::htpasswd("alice", "s3cret")))
            .unwrap();
    let (_src, image) = fixture();
    reg.push(&image.skopeo_ref, "private/img:1", &[]).unwrap();
    assert_eq!(
        reg.manifest_digest("private/img:1").unwrap(),
        image.manifest_digest
    );

    let src = format!("docker://{}/private/img:1", reg.host());
    let dest = util::temp_dir("pulled").unwrap();
    let dest_ref = format!("oci:{}:x", dest.path().display());
    assert_skopeo_fails(
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "alice:wrong",
            &src,
            &dest_ref,
        ],
        &["unauthorized", "401"],
    );
    assert_skopeo_fails(
        &["copy", "--src-tls-verify=false", &src, &dest_ref],
        &["unauthorized", "401"],
    );
    util::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        &src,
        &dest_ref,
    ])
    .unwrap();
    assert_eq!(tagged_digest(dest.path(), "x"), image.manifest_digest);

    let anonymous = http_get(reg.host(), "/v2/", &[]).unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
}

#[test]
fn token_auth_issues_tokens_the_registry_accepts() {
    let reg =
        Registry::start(RegistryOptions::default().with_auth(Auth::token("bob", "pw"))).unwrap();
    let realm = reg.token_realm().unwrap().to_owned();
    assert!(realm.starts_with("http://127.0.0.1:"), "{realm}");

    // The registry challenges with our realm.
    let challenge = http_get(reg.host(), "/v2/", &[]).unwrap();
    assert_eq!(challenge.status, 401);
    let www = challenge.header("www-authenticate").unwrap();
    assert!(www.starts_with("Bearer") && www.contains(&realm), "{www}");
    // A forged token is refused.
    let forged = http_get(
        reg.host(),
        "/v2/",
        &[("Authorization", "Bearer e30.e30.c2ln")],
    )
    .unwrap();
    assert_eq!(forged.status, 401);

    let (_src, image) = fixture();
    reg.push(&image.skopeo_ref, "team/app:1", &[]).unwrap();
    assert_eq!(
        reg.manifest_digest("team/app:1").unwrap(),
        image.manifest_digest
    );
    let pushes = reg.token_requests();
    assert!(
        pushes.iter().any(|r| r.granted
            && r.user.as_deref() == Some("bob")
            && r.service.as_deref() == Some("cairn-test-registry")
            && r.scopes
                .iter()
                .any(|s| s.starts_with("repository:team/app:") && s.contains("push"))),
        "{pushes:#?}"
    );

    let src = format!("docker://{}/team/app:1", reg.host());
    let dest = util::temp_dir("pulled").unwrap();
    let dest_ref = format!("oci:{}:x", dest.path().display());
    assert_skopeo_fails(
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "bob:nope",
            &src,
            &dest_ref,
        ],
        &["unauthorized", "401"],
    );
    assert!(reg
        .token_requests()
        .iter()
        .any(|r| !r.granted && r.user.as_deref() == Some("bob")));
    reg.pull("team/app:1", &dest_ref, &[]).unwrap();
    assert_eq!(tagged_digest(dest.path(), "x"), image.manifest_digest);
    assert!(reg
        .token_requests()
        .iter()
        .any(|r| r.granted && r.scopes == ["repository:team/app:pull"]));
}

#[test]
fn tls_registry_verifies_with_its_ca() {
    let reg = Registry::start(
        RegistryOptions::default()
            .with_tls()
            .with_auth(Auth::htpasswd("u", "p")),
    )
    .unwrap();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let ca = std::fs::read_to_string(reg.ca_cert_path().unwrap()).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));
    let (_src, image) = fixture();
    reg.push(&image.skopeo_ref, "secure/img:1", &[]).unwrap();
    // manifest() goes through reqwest/rustls trusting only the test CA.
    assert_eq!(
        reg.manifest_digest("secure/img:1").unwrap(),
        image.manifest_digest
    );

    let src = format!("docker://{}/secure/img:1", reg.host());
    let dest = util::temp_dir("pulled").unwrap();
    let dest_ref = format!("oci:{}:x", dest.path().display());
    let cert_dir = reg.cert_dir().unwrap().to_str().unwrap().to_owned();
    // Verification on, without the CA: refused.
    assert_skopeo_fails(
        &[
            "copy",
            "--src-creds",
            "u:p",
            "--src-cert-dir",
            "/nonexistent",
            &src,
            &dest_ref,
        ],
        &["certificate", "x509"],
    );
    // Verification on, with the CA: accepted.
    util::skopeo(&[
        "copy",
        "--src-tls-verify=true",
        "--src-cert-dir",
        &cert_dir,
        "--src-creds",
        "u:p",
        &src,
        &dest_ref,
    ])
    .unwrap();
    assert_eq!(tagged_digest(dest.path(), "x"), image.manifest_digest);
}

/// A registry with the fixture pushed, and a proxy in front of it.
fn proxied() -> (Registry, FaultProxy, BuiltImage) {
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    let (_src, image) = fixture();
    reg.push(&image.skopeo_ref, "lib/img:1", &[]).unwrap();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    (reg, proxy, image)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn proxy_429_with_retry_after_reaches_reqwest() {
    let (_reg, proxy, image) = proxied();
    let rule = proxy.add_rule(
        Rule::new(Action::too_many_requests("1"))
            .method("GET")
            .path_contains("/manifests/")
            .times(1),
    );
    let url = format!("{}/v2/lib/img/manifests/1", proxy.url());
    util::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let (first, retry_after, second, body) = block_on(async {
        let first = client
            .get(&url)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let retry_after = first.headers()["retry-after"].to_str().unwrap().to_owned();
        let second = client
            .get(&url)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let status = second.status().as_u16();
        (
            first.status().as_u16(),
            retry_after,
            status,
            second.bytes().await.unwrap(),
        )
    });
    assert_eq!((first, retry_after.as_str(), second), (429, "1", 200));
    assert_eq!(sha256_digest(&body), image.manifest_digest);
    assert_eq!(proxy.rule_hits(rule), 1);

    let log = proxy.requests_matching("GET", "/manifests/");
    let statuses: Vec<_> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
    assert_eq!(log[0].faults, [Action::too_many_requests("1")]);
    assert!(log[1].faults.is_empty());
    assert!(log[1].at >= log[0].at);
    assert_eq!(proxy.requests().len(), 2, "{:#?}", proxy.requests());
}

#[test]
fn proxy_truncates_after_n_bytes_with_full_content_length() {
    let (reg, proxy, image) = proxied();
    let layer = &image.layer_digests[0];
    let full = std::fs::read(reg.blob_data_path(layer)).unwrap();
    assert!(full.len() > 10);
    proxy.add_rule(
        Rule::new(Action::Truncate { after_bytes: 10 })
            .path_contains("/blobs/")
            .times(1),
    );
    let path = format!("/v2/lib/img/blobs/{layer}");
    let cut = http_get(proxy.host(), &path, &[]).unwrap();
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length(), Some(full.len() as u64));
    assert_eq!(cut.body, full[..10]);
    // Budget spent: the next request is whole.
    let whole = http_get(proxy.host(), &path, &[]).unwrap();
    assert_eq!(whole.body, full);
}

#[test]
fn proxy_truncates_a_large_blob_mid_stream() {
    // About 3 MiB of incompressible bytes, so the body spans many frames.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let dir = util::temp_dir("big").unwrap();
    let image = OciLayout::create(dir.path())
        .unwrap()
        .add_image("t", &ImageSpec::new().layer(&[("noise", &noise)]))
        .unwrap();
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    reg.push(&image.skopeo_ref, "big/img:1", &[]).unwrap();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let layer = &image.layer_digests[0];
    let full = std::fs::read(reg.blob_data_path(layer)).unwrap();
    let cut_at = (1 << 20) + 7;
    proxy.add_rule(
        Rule::new(Action::Truncate {
            after_bytes: cut_at as u64,
        })
        .method("GET")
        .path_contains(layer),
    );
    let cut = http_get(proxy.host(), &format!("/v2/big/img/blobs/{layer}"), &[]).unwrap();
    assert_eq!(cut.content_length(), Some(full.len() as u64));
    assert_eq!(cut.body.len(), cut_at);
    assert!(cut.body == full[..cut_at]);
}

#[test]
fn proxy_corrupts_one_byte_keeping_length() {
    let (reg, proxy, image) = proxied();
    let layer = &image.layer_digests[0];
    let full = std::fs::read(reg.blob_data_path(layer)).unwrap();
    proxy.add_rule(Rule::new(Action::CorruptByte { offset: 3 }).path_contains("/blobs/"));
    let got = http_get(proxy.host(), &format!("/v2/lib/img/blobs/{layer}"), &[]).unwrap();
    assert_eq!(got.body.len(), full.len());
    let diffs: Vec<usize> = (0..full.len())
        .filter(|&i| got.body[i] != full[i])
        .collect();
    assert_eq!(diffs, [3]);
    assert_ne!(&sha256_digest(&got.body), layer);
}

#[test]
fn proxy_close_delay_and_ignore_range() {
    let (reg, proxy, image) = proxied();
    let layer = &image.layer_digests[0];
    let full = std::fs::read(reg.blob_data_path(layer)).unwrap();
    let path = format!("/v2/lib/img/blobs/{layer}");

    // Range passes through by default...
    let partial = http_get(proxy.host(), &path, &[("Range", "bytes=5-")]).unwrap();
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, full[5..]);
    // ...and is stripped on request.
    let ignore = proxy.add_rule(Rule::new(Action::IgnoreRange).times(1));
    let whole = http_get(proxy.host(), &path, &[("Range", "bytes=5-")]).unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, full);
    assert_eq!(proxy.rule_hits(ignore), 1);

    // Dropped connection: no status line at all.
    proxy.add_rule(Rule::new(Action::CloseConnection).method("GET").times(1));
    let closed = http_get(proxy.host(), &path, &[]).unwrap();
    assert_eq!((closed.status, closed.body.len()), (0, 0), "{closed:?}");

    // Delay.
    proxy.add_rule(Rule::new(Action::Delay { ms: 300 }).times(1));
    let started = Instant::now();
    assert_eq!(http_get(proxy.host(), &path, &[]).unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Status with a body, then clear_rules restores pass-through.
    proxy.add_rule(Rule::new(Action::Status {
        code: 503,
        retry_after: None,
        body: "down".into(),
    }));
    let down = http_get(proxy.host(), &path, &[]).unwrap();
    assert_eq!((down.status, down.body.as_slice()), (503, &b"down"[..]));
    proxy.clear_rules();
    assert_eq!(http_get(proxy.host(), &path, &[]).unwrap().status, 200);

    let log = proxy.requests();
    let ranges: Vec<_> = log.iter().map(|r| r.range.as_deref()).collect();
    assert_eq!(
        ranges,
        [Some("bytes=5-"), Some("bytes=5-"), None, None, None, None]
    );
    let statuses: Vec<_> = log.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(206), Some(200), None, Some(200), Some(503), Some(200)]
    );
    assert!(log[3].faults == [Action::Delay { ms: 300 }]);
}

#[test]
fn skopeo_push_and_pull_through_proxy() {
    let reg = Registry::start(RegistryOptions::default()).unwrap();
    let proxy = FaultProxy::start(reg.host()).unwrap();
    let (_src, image) = fixture();
    // Uploads (POST, PATCH/PUT with Location) and a pull, all through the proxy.
    util::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &image.skopeo_ref,
        &format!("docker://{}/via/proxy:1", proxy.host()),
    ])
    .unwrap();
    assert_eq!(
        reg.manifest_digest("via/proxy:1").unwrap(),
        image.manifest_digest
    );
    assert!(!proxy
        .requests_matching("POST", "/blobs/uploads/")
        .is_empty());
    proxy.clear_requests();

    let out = util::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/via/proxy:1", proxy.host()),
    ])
    .unwrap();
    assert_eq!(sha256_digest(out.as_bytes()), image.manifest_digest);
    let manifests = proxy.requests_matching("", "/manifests/");
    assert_eq!(manifests.len(), 1, "{manifests:#?}");
    assert_eq!(manifests[0].method, "GET");
    assert!(proxy
        .requests()
        .iter()
        .all(|r| r.path == "/v2/" || r.path.contains("/manifests/")));
}
