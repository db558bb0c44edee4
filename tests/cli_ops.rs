//! Operator commands: staff accounts and the staff page served alone.

use crate::support::Instance;
use std::io::{Read, Write};
use std::process::Stdio;

#[test]
fn staff_add_reads_the_password_from_stdin_and_refuses_weak_ones() {
    let i = Instance::new("");
    let out = i
        .cmd()
        .args(["staff", "add", "alice", "--role", "admin"])
        .write_stdin("correct horse battery\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added alice (admin)"));

    let out = i
        .cmd()
        .args(["staff", "add", "bob"])
        .write_stdin("short\n")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 characters"));

    let out = i
        .cmd()
        .args(["staff", "add", "alice"])
        .write_stdin("another long password\n")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a name is added once");
    // The password never appears in the audit trail.
    assert!(!i.ok(&["audit"]).contains("correct horse"));
}

#[test]
fn web_serves_the_staff_page_until_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let i = Instance::new(&format!("[web]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("postroom"))
        .args(["--config", i.config.to_str().unwrap(), "web"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the staff page did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("<form"), "{body}");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");

    // A port already taken names the key to change.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let j = Instance::new(&format!("[web]\nlisten = \"127.0.0.1:{port}\"\n"));
    let out = j.cmd().arg("web").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[web] listen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One async worker by default; `TOKIO_WORKER_THREADS` asks for more, and a value that is not
/// a positive number is refused by name rather than ignored.
#[test]
fn worker_threads_come_from_tokio_worker_threads_or_are_refused_by_name() {
    let i = Instance::new("");
    for ok in ["", "1", "3"] {
        let mut cmd = i.cmd();
        if !ok.is_empty() {
            cmd.env("TOKIO_WORKER_THREADS", ok);
        }
        let out = cmd.args(["audit"]).output().unwrap();
        assert!(
            out.status.success(),
            "TOKIO_WORKER_THREADS={ok:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for bad in ["0", "many", "-2"] {
        let out = i
            .cmd()
            .env("TOKIO_WORKER_THREADS", bad)
            .args(["audit"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "TOKIO_WORKER_THREADS={bad:?} was accepted"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("TOKIO_WORKER_THREADS"), "{err}");
    }
}
