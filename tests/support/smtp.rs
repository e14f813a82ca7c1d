//! A real SMTP server (aiosmtpd, `smtp_server.py`) and a test CA for the mail tests.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A running aiosmtpd and the directory it records mails into.
pub struct SmtpServer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: TempDir,
}

impl SmtpServer {
    /// Start it with extra `smtp_server.py` arguments.
    pub fn start(args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = File::create(dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(super::test_venv_python())
            .arg(super::support_file("smtp_server.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start smtp_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the port line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("smtp_server.py did not start: {line:?}\n{log}")
            });
        SmtpServer { child, port, dir }
    }

    /// Wait until `n` mails are recorded (at most 10 s); return all recorded, in order.
    pub fn mails(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .expect("read dir")
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                return files
                    .iter()
                    .map(|p| {
                        serde_json::from_slice(&std::fs::read(p).expect("read mail"))
                            .expect("mail record is JSON")
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `localhost` / `127.0.0.1` signed by it, made with the
/// `openssl` command (rustls refuses a self-signed CA certificate used as the server's own).
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// Make the CA and the server certificate.
    pub fn make() -> TestCerts {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("the openssl command is needed to make the test certificate");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("leaf.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write ext");
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=bucketq test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
        TestCerts { dir }
    }

    /// A file of the set: `ca.pem`, `leaf.pem`, `leaf.key`.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}
