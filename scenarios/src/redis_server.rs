//! A Redis server for the cache scenarios and benches: the one named by `REDIS_URL`, else one
//! started from `redis-server` on PATH for as long as it is needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis for the scenarios and benches: `REDIS_URL`, else a `redis-server` from PATH on
/// a free loopback port, stopped on drop.
#[derive(Debug)]
pub struct RedisService {
    url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl RedisService {
    /// Finds or starts a server; the error says why there is none.
    pub fn locate() -> Result<Self, String> {
        if let Ok(url) = std::env::var("REDIS_URL")
            && !url.is_empty()
        {
            return Ok(Self {
                url,
                child: None,
                _dir: None,
            });
        }
        let binary = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("redis-server"))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| "no Redis: REDIS_URL unset and no redis-server on PATH".to_owned())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let service = Self {
            url: format!("redis://127.0.0.1:{port}/"),
            child: Some(child),
            _dir: Some(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 8];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return Ok(service);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer".to_owned())
    }
}

impl RedisService {
    /// Its `redis://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisService {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
