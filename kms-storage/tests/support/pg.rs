//! A throw-away PostgreSQL database for tests.
//!
//! With `KMS_TEST_POSTGRES_URL` set (as `.ci/run` does, to a cluster it started), each
//! [`TestDatabase`] is a fresh database on that server, dropped afterwards. Without it, each
//! one starts its own cluster from the installed PostgreSQL binaries (`initdb`, `postgres`,
//! found on the PATH or under `/usr/lib/postgresql/*/bin`) in a temporary directory, on a free
//! loopback port, as the `postgres` user when the tests run as root; the cluster stops and its
//! directory goes when the value is dropped. A test that needs PostgreSQL and finds neither
//! fails; it never skips.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A database that exists for one test.
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    postgres: Child,
    running: bool,
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    as_postgres_user: bool,
}

impl TestDatabase {
    /// A new, empty database.
    pub fn create() -> TestDatabase {
        let (admin_url, cluster) = match std::env::var("KMS_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let cluster = Cluster::start();
                (cluster.url("postgres"), Some(cluster))
            }
        };
        let name = format!("kms_test_{:016x}", rand_u64());
        let mut admin = connect(&admin_url, Duration::from_secs(30));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        let url = with_database(&admin_url, &name);
        TestDatabase {
            url,
            name,
            admin_url,
            cluster,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the database server (only for a cluster this value started).
    pub fn stop_server(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.stop();
        }
    }

    /// Starts the database server again on the same port and data (after `stop_server`).
    pub fn start_server(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.spawn();
            connect(&c.url("postgres"), Duration::from_secs(30));
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.cluster.is_none() {
            if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

/// Replaces the database name of a `postgres://` URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn connect(url: &str, within: Duration) -> postgres::Client {
    let deadline = Instant::now() + within;
    loop {
        match postgres::Client::connect(url, postgres::NoTls) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("PostgreSQL at {url} did not answer: {e}"),
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn find_bin() -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(initdb) = on_path {
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent() {
            if dir.join("postgres").exists() {
                return dir.to_path_buf();
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL is needed: set KMS_TEST_POSTGRES_URL, or install its server binaries \
         (initdb, postgres)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let bin = find_bin();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres_user = is_root();
        if as_postgres_user {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the test cluster directory");
        }
        let data = dir.path().join("data");
        let status = Self::command(&bin, "initdb", as_postgres_user)
            .args(["-A", "trust", "-U", "kms", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb of the test cluster");
        let mut cluster = Cluster {
            postgres: Command::new("true").spawn().unwrap(),
            running: false,
            dir,
            port: free_port(),
            bin,
            as_postgres_user,
        };
        cluster.spawn();
        connect(&cluster.url("postgres"), Duration::from_secs(30));
        cluster
    }

    fn command(bin: &Path, program: &str, as_postgres_user: bool) -> Command {
        // (initdb; the server itself starts in `spawn`.)
        if as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        }
    }

    /// Starts `postgres` under a shell that stops it (fast shutdown) when its stdin closes:
    /// when this value is dropped, or when the test process dies without dropping it.
    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let script = r#""$0" "$@" </dev/null & pg=$!; read _; kill -INT $pg 2>/dev/null; wait $pg"#;
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        self.postgres = command
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.running = true;
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://kms@127.0.0.1:{}/{db}", self.port)
    }

    /// Fast shutdown (closing the shell's stdin), waiting for the server to exit.
    fn stop(&mut self) {
        if !std::mem::take(&mut self.running) {
            return;
        }
        drop(self.postgres.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.postgres.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The shell did not finish: stop the postmaster itself.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")) {
            if let Some(pid) = pid.lines().next() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = self.postgres.kill();
        let _ = self.postgres.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
