//! Sign-in burst (issue 13, defect 2): `BENCH_SIGNINS` (500) sign-ins at once against the
//! real `postroom web`, each from its own address (through `[web] trusted_proxies`, as a
//! distributed attack through the proxy would arrive) for its own name, so the throttle lets
//! every one through to the password check and only the bound on concurrent Argon2 checks
//! (`web::auth::MAX_CONCURRENT_CHECKS`) stands between the burst and the memory. Reports the
//! server's resident memory before, its peak (VmHWM) and after, the answers (401 checked,
//! 429 busy) and the wall time. Before the bound, 50 tries took the server from 27 MB to
//! 1.0 GB and 100 to 2.9 GB.
//!
//! The binary: `BENCH_POSTROOM_BIN`, else `$CARGO_TARGET_DIR/release/postroom`, else
//! `target/release/postroom` (`cargo build --release` first). Without `--bench` (as `cargo
//! test` runs bench targets) it does nothing and exits 0:
//!
//! ```text
//! cargo build --release && cargo bench --bench signin_burst
//! BENCH_SIGNINS=1000 cargo bench --bench signin_burst
//! ```
//!
//! Prints a table and, last, one line of JSON. Fails (non-zero, with a message) when the
//! binary is missing, the server does not come up, or an answer is neither 401 nor 429.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type R<T> = Result<T, String>;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("signin_burst: ERROR: {msg}");
    std::process::exit(1);
}

fn bin() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("BENCH_POSTROOM_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("release/postroom")),
        )
        .chain(std::iter::once(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/postroom"),
        ))
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            die(format!(
                "no postroom binary (looked at {candidates:?}): cargo build --release first, or set BENCH_POSTROOM_BIN"
            ))
        })
}

/// A field of /proc/PID/status in kB.
fn status_kb(pid: u32, field: &str) -> R<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// One HTTP/1.1 exchange on a fresh connection: status, headers, body.
async fn http(port: u16, request: String) -> R<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {head:.200}"))?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// Open the sign-in form, send it back with a wrong password as `name` from `addr`.
async fn sign_in(port: u16, name: String, addr: String) -> R<u16> {
    let (status, head, _) = http(
        port,
        "GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
    )
    .await?;
    if status != 200 {
        return Err(format!("GET /login: {status}"));
    }
    let token = head
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: postroom_login=")
        })
        .filter_map(|l| l.split_once('=').map(|(_, v)| v))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .next()
        .ok_or("the sign-in form set no cookie")?;
    let body = format!("_csrf={token}&name={name}&password=not+the+password");
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Cookie: postroom_login={token}\r\nX-Forwarded-For: {addr}\r\n\r\n{body}",
        body.len()
    );
    Ok(http(port, req).await?.0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("signin_burst: skipped (needs --bench: cargo bench --bench signin_burst)");
        return;
    }
    let n: usize = match std::env::var("BENCH_SIGNINS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| die(format!("BENCH_SIGNINS={v:?} is not a positive number"))),
        _ => 500,
    };
    let bin = bin();
    let dir = tempfile::Builder::new()
        .prefix("postroom-bench-signin-")
        .tempdir()
        .unwrap_or_else(|e| die(format!("temp dir: {e}")));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| die(format!("free port: {e}")));
    let config = dir.path().join("postroom.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[helpdesk]\naddress = \"helpdesk@bench.example\"\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
            dir.path().join("postroom.db").display()
        ),
    )
    .unwrap_or_else(|e| die(format!("config: {e}")));
    let mut add = Command::new(&bin)
        .args(["--config", &config.display().to_string()])
        .args(["staff", "add", "alice", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| die(format!("{}: {e}", bin.display())));
    if let Some(mut stdin) = add.stdin.take() {
        let _ = writeln!(stdin, "the bench's long password");
    }
    if !add.wait().is_ok_and(|s| s.success()) {
        die("postroom staff add failed");
    }
    let server = Server(
        Command::new(&bin)
            .args(["--config", &config.display().to_string(), "web"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| die(format!("postroom web: {e}"))),
    );
    let pid = server.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("runtime: {e}")));
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                die("postroom web did not come up in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // One sign-in first, so the baseline includes a warmed server (the dummy hash made).
        if let Err(e) = sign_in(port, "warmup".into(), "192.0.2.1".into()).await {
            die(format!("first sign-in: {e}"));
        }
        let before = status_kb(pid, "VmRSS:").unwrap_or_else(|e| die(e));
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let addr = format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
                tokio::spawn(sign_in(port, format!("user{i}"), addr))
            })
            .collect();
        let (mut checked, mut busy) = (0usize, 0usize);
        for t in tasks {
            match t.await {
                Ok(Ok(401)) => checked += 1,
                Ok(Ok(429)) => busy += 1,
                Ok(Ok(other)) => die(format!("an answer was {other}, not 401 or 429")),
                Ok(Err(e)) => die(e),
                Err(e) => die(e),
            }
        }
        let wall = started.elapsed();
        let peak = status_kb(pid, "VmHWM:").unwrap_or_else(|e| die(e));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = status_kb(pid, "VmRSS:").unwrap_or_else(|e| die(e));
        if checked == 0 {
            die("no password was checked: the bench measured nothing");
        }
        let mb = |kb: u64| kb as f64 / 1024.0;
        println!("sign-in burst against {}", bin.display());
        println!("  sign-ins at once        {n}");
        println!("  checked (401)           {checked}");
        println!("  busy (429)              {busy}");
        println!("  wall time               {:.2} s", wall.as_secs_f64());
        println!("  RSS before              {:.1} MB", mb(before));
        println!("  peak RSS (VmHWM)        {:.1} MB", mb(peak));
        println!("  RSS 1 s after           {:.1} MB", mb(after));
        println!(
            "{}",
            serde_json::json!({
                "bench": "signin_burst",
                "signins": n,
                "checked": checked,
                "busy": busy,
                "wall_s": wall.as_secs_f64(),
                "rss_before_mb": mb(before),
                "peak_rss_mb": mb(peak),
                "rss_after_mb": mb(after),
            })
        );
    });
    drop(server);
}
