//! bucketq's OSS signers against Alibaba's own, byte for byte, on thousands of generated
//! requests: unicode keys, spaces, `+`, `%`, `~`, reserved characters, sub-resources and plain
//! query parameters, user metadata, content type and MD5, STS tokens, times over a decade. The
//! SDKs' signers (`alibabacloud-oss-v2` for V4, `oss2` for V1) run in
//! `tests/support/oss_sign_batch.py`; any difference fails with the request that caused it.

#[path = "support/oss_oracle.rs"]
mod oss_oracle;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use bucketq::secret::Secret;
use bucketq::store::sign::Credentials;
use bucketq::store::transport::{RequestSpec, Signer};
use bucketq::store::Op;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Requests per signature version.
const CASES: usize = 2500;

const PIECES: &[&str] = &[
    "a", "Z", "0", "9", "-", "_", ".x", "~", "/", " ", "+", "%", "%20", "*", "'", "(", ")", "!",
    "=", "&", "?", "#", "@", ":", ",", ";", "$", "[", "]", "测试", "邮件", "é", "ü", "🦀", "mail/",
    "task", ".task", ".lock",
];

fn text(rng: &mut StdRng, max: usize) -> String {
    let n = rng.gen_range(1..=max);
    (0..n)
        .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
        .collect()
}

fn key(rng: &mut StdRng) -> String {
    loop {
        let k = text(rng, 12);
        let ok = !k.starts_with('/')
            && !k.split('/').any(|seg| seg == "." || seg == "..")
            && !k.contains("//");
        if ok {
            return k;
        }
    }
}

fn meta_value(rng: &mut StdRng) -> String {
    const ASCII: &[u8] = b"abcXYZ019 -_=+/:;,.!*'()&%$@";
    let n = rng.gen_range(1..24);
    let v: String = (0..n)
        .map(|_| ASCII[rng.gen_range(0..ASCII.len())] as char)
        .collect();
    let v = v.trim().to_owned();
    if v.is_empty() {
        "x".into()
    } else {
        v
    }
}

/// Makes a random value for one query parameter.
type ValueMaker = fn(&mut StdRng) -> String;

/// One random request, as bucketq's request builders shape them.
fn request(rng: &mut StdRng) -> RequestSpec {
    let method = ["GET", "PUT", "HEAD", "DELETE", "POST"][rng.gen_range(0..5)];
    let bucket_level = rng.gen_bool(0.25);
    let mut spec = RequestSpec::new(
        Op::Get,
        method,
        "https://b.oss-cn-hangzhou.aliyuncs.com",
        "b.oss-cn-hangzhou.aliyuncs.com",
        "/".into(),
    );
    spec.bucket = Some("examplebucket".into());
    if !bucket_level {
        spec.key = key(rng);
    }
    let params: &[(&str, ValueMaker)] = &[
        ("versioning", |_| String::new()),
        ("delete", |_| String::new()),
        ("acl", |_| String::new()),
        ("uploads", |_| String::new()),
        ("list-type", |_| "2".into()),
        ("prefix", |r| key(r)),
        ("max-keys", |r| r.gen_range(1..=1000).to_string()),
        ("encoding-type", |_| "url".into()),
        ("continuation-token", |r| format!("{}+/=", text(r, 4))),
        ("start-after", |r| key(r)),
        ("response-content-type", |_| {
            "text/plain; charset=utf-8".into()
        }),
        ("x-oss-process", |_| "image/resize,w_100".into()),
    ];
    for (name, value) in params {
        if rng.gen_bool(0.2) {
            spec.param(name, value(rng));
        }
    }
    if rng.gen_bool(0.5) {
        spec.header(
            "content-type",
            [
                "application/json",
                "text/plain; charset=utf-8",
                "application/octet-stream",
            ][rng.gen_range(0..3)],
        );
    }
    if rng.gen_bool(0.4) {
        spec.header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
    if rng.gen_bool(0.3) {
        spec.header("x-oss-forbid-overwrite", "true");
    }
    if rng.gen_bool(0.3) {
        let source = key(rng);
        spec.header(
            "x-oss-copy-source",
            format!(
                "/examplebucket/{}",
                bucketq::store::sign::uri_encode(&source, false)
            ),
        );
        spec.header("x-oss-metadata-directive", "REPLACE");
    }
    for _ in 0..rng.gen_range(0..4) {
        let name = [
            "bq-token",
            "bq-attempt",
            "bq-owner",
            "bq-error",
            "custom_Name-1",
        ][rng.gen_range(0..5)];
        let name = format!("x-oss-meta-{}", name.to_ascii_lowercase());
        if spec.header_value(&name).is_none() {
            spec.header(&name, meta_value(rng));
        }
    }
    spec
}

#[test]
fn bucketqs_signers_agree_with_the_sdks_on_generated_requests() {
    let mut rng = StdRng::seed_from_u64(0x5160_2026);
    let mut cases = Vec::new();
    let mut lines = String::new();
    for i in 0..CASES * 2 {
        let v4 = i % 2 == 0;
        let spec = request(&mut rng);
        let token = rng
            .gen_bool(0.4)
            .then(|| format!("CAIS{}==", text(&mut rng, 3).replace(' ', "")));
        let creds = Credentials {
            access_key_id: format!("LTAI{}", rng.gen_range(1000..9999)),
            secret: Secret::new(format!("secret-{}", rng.gen::<u32>())),
            security_token: token.clone().map(Secret::new),
        };
        let secs = rng.gen_range(1_577_836_800u64..1_893_456_000);
        let signer = if v4 {
            Signer::OssV4 {
                region: "cn-hangzhou".into(),
            }
        } else {
            Signer::OssV1
        };
        let ours = signer
            .sign(&spec, &creds, UNIX_EPOCH + Duration::from_secs(secs))
            .into_iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v)
            .expect("an authorization header");
        let headers: serde_json::Map<String, serde_json::Value> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let row = json!({
            "version": if v4 { "v4" } else { "v1" },
            "method": spec.method,
            "bucket": spec.bucket,
            "key": if spec.key.is_empty() { None } else { Some(&spec.key) },
            "raw_query": spec.query_string(),
            "query": spec.query,
            "headers": headers,
            "time": secs,
            "id": creds.access_key_id,
            "secret": creds.secret.expose(),
            "token": token,
            "region": "cn-hangzhou",
        });
        lines.push_str(&row.to_string());
        lines.push('\n');
        cases.push((row, ours));
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oss_sign_batch.py");
    let mut child = Command::new(oss_oracle::oracle_python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let out = child.wait_with_output().expect("the SDK signers ran");
    writer.join().expect("writer").expect("wrote the requests");
    assert!(
        out.status.success(),
        "oss_sign_batch.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    assert_eq!(theirs.len(), cases.len(), "one signature per request");
    let mut v4 = 0;
    for ((row, ours), sdk) in cases.iter().zip(theirs) {
        assert_eq!(ours, sdk, "bucketq and the SDK disagree on {row:#}");
        v4 += usize::from(row["version"] == "v4");
    }
    println!(
        "{} requests signed alike ({v4} V4, {} V1)",
        cases.len(),
        cases.len() - v4
    );
}
