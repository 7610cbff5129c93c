//! Test services: a Redis from `REDIS_URL` or a `redis-server` started on a free loopback
//! port, stopped on drop; a skip (or, with `PERFLAB_REQUIRE_SERVICES=1`, a failure) without.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rust_ai_ide_cache::CacheConfig;

/// A Redis for one test.
#[derive(Debug)]
pub struct RedisServer {
    pub url: String,
    port: u16,
    binary: Option<PathBuf>,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

/// Any Redis: `REDIS_URL`, else a `redis-server` of our own.
pub fn redis(test: &str) -> Option<RedisServer> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.is_empty()
    {
        return Some(RedisServer {
            url,
            port: 0,
            binary: None,
            child: None,
            dir: None,
        });
    }
    managed_redis(test)
}

/// A `redis-server` this test owns (it can stop, restart and pause it).
pub fn managed_redis(test: &str) -> Option<RedisServer> {
    let Some(binary) = find_on_path("redis-server") else {
        return skip(
            test,
            "no redis-server on PATH (and this test must own its server)",
        );
    };
    let mut server = RedisServer {
        url: String::new(),
        port: 0,
        binary: Some(binary),
        child: None,
        dir: Some(tempfile::tempdir().expect("tempdir")),
    };
    for _ in 0..5 {
        server.port = free_port();
        server.url = format!("redis://127.0.0.1:{}/", server.port);
        if server.start() {
            return Some(server);
        }
    }
    panic!("{test}: redis-server did not start");
}

fn skip<T>(test: &str, reason: &str) -> Option<T> {
    if std::env::var("PERFLAB_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: Redis is required (PERFLAB_REQUIRE_SERVICES=1) but {reason}");
    }
    eprintln!("skipped {test}: {reason}; set REDIS_URL or install redis-server");
    None
}

impl RedisServer {
    /// Stops the server (kill, wait).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.start() {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends one inline command and returns the first reply line.
    pub fn command(&self, line: &str) -> String {
        let addr = self
            .url
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        let mut s = TcpStream::connect(addr).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    }

    fn start(&mut self) -> bool {
        let (Some(binary), Some(dir)) = (&self.binary, &self.dir) else {
            return false;
        };
        let child = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return true;
                }
            }
            if self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            {
                break; // exited: the port was taken
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A namespace no other test (or earlier run on a shared Redis) uses.
pub fn namespace(test: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("it-{test}-{}-{n}-{nanos}", std::process::id())
}

/// A configuration for tests: the given Redis and disk, small tiers, short timeouts.
pub fn config(test: &str, redis_url: &str, disk: Option<&std::path::Path>) -> CacheConfig {
    CacheConfig {
        l1_capacity: 1 << 20,
        redis_url: redis_url.to_owned(),
        disk_path: disk.map(PathBuf::from).unwrap_or_default(),
        namespace: namespace(test),
        l3_capacity: 16 << 20,
        redis_timeout: Duration::from_millis(500),
        redis_connect_timeout: Duration::from_millis(500),
        l2_retry_interval: Duration::from_millis(100),
        ..CacheConfig::default()
    }
}

/// Polls `check` every 20 ms until it holds; false after `limit`.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
