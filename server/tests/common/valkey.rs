//! A Redis-protocol server for the Valkey tests: the CI machine's on 127.0.0.1:6379
//! (`LIB_AUTH_TEST_VALKEY_URL` to use another), shared under a key prefix per test, or a
//! `redis-server` process of the test's own, to kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared server's URL.
pub fn shared_valkey() -> String {
    std::env::var("LIB_AUTH_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("lib-auth-test-{test}-{}-{nanos}", std::process::id())
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the test's own, killed when dropped (also when the test fails).
pub struct Redis(Child);

impl Redis {
    /// Stops the server now.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of the test's own on `port`, keeping nothing on disk.
pub fn start_redis(port: u16) -> Redis {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server; .ci/run does it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis(child)
}
