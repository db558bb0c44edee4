//! The staff page is accessible (issue 17, item 9): every page, signed in, passes axe-core
//! (the npm package, pinned in tests/axe/, run inside the real headless Chromium of the
//! browser test) with no serious or critical violation of WCAG 2.1 A/AA, and every page fits
//! a 320-pixel-wide screen without scrolling sideways (WCAG 1.4.10, reflow).
//!
//! Needs what `scripts/install-browser` installs (Chromium, chromedriver, axe-core). Without
//! them the test fails when `CI` is set and is skipped, loudly, otherwise.

use crate::web_browser::{
    PASSWORD, browser, click, free_port, instance, path_of, type_into, wait_for_port,
};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use postroom::web::{self, Status};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every page a staff member (an administrator, who sees them all) reaches.
const PAGES: &[&str] = &[
    "/queue",
    "/requests",
    "/requests/HD-000008",
    "/requests/HD-000002",
    "/directory",
    "/directory?view=at_risk",
    "/directory/history",
    "/audit",
    "/audit/report",
    "/outbox",
    "/staff",
];

/// The rules run: WCAG 2.0/2.1 A and AA (axe-core's tags).
const RUN_AXE: &str = r#"
var done = arguments[arguments.length - 1];
axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
  .then(function (r) {
    done(JSON.stringify(r.violations.map(function (v) {
      return { id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(' '); }) };
    })));
  })
  .catch(function (e) { done('ERROR ' + e); });
"#;

fn axe_source() -> Result<String, String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("axe-core is not installed ({}: {e})", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_core_and_fits_a_320_pixel_screen() {
    let found = browser().and_then(|b| axe_source().map(|axe| (b, axe)));
    let ((chromium, driver), axe) = match found {
        Ok(f) => f,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}: the accessibility test needs it in CI (run scripts/install-browser)")
        }
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED web_a11y: {why}. Run scripts/install-browser (as root). ***\n"
            );
            return;
        }
    };

    let (_instance, store, cfg) = instance().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(web::serve(
        store.clone(),
        cfg.clone(),
        listener,
        shutdown.clone(),
        Status::new(),
    ));
    let port = free_port().await;
    let mut chromedriver = tokio::process::Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    wait_for_port(port).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");

    let outcome = check(&client, &base, &axe).await;
    let _ = client.close().await;
    let _ = chromedriver.kill().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    outcome.unwrap_or_else(|e| panic!("{e}"));
}

/// axe-core's violations on the page now, as (impact, description) lines.
async fn violations(c: &Client, axe: &str) -> Result<Vec<(String, String)>, String> {
    // Injected through WebDriver (which the page's Content-Security-Policy does not govern):
    // the page itself runs no script.
    c.execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await
        .map_err(|e| format!("injecting axe-core: {e}"))?;
    let out = c
        .execute_async(RUN_AXE, vec![])
        .await
        .map_err(|e| format!("running axe-core: {e}"))?;
    let text = out.as_str().unwrap_or_default().to_owned();
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|_| format!("axe-core said: {text}"))?;
    Ok(list
        .iter()
        .map(|v| {
            (
                v["impact"].as_str().unwrap_or("unknown").to_owned(),
                format!("{}: {} at {}", v["id"], v["help"], v["nodes"]),
            )
        })
        .collect())
}

async fn check(c: &Client, base: &str, axe: &str) -> Result<(), String> {
    c.set_window_size(1280, 900)
        .await
        .map_err(|e| e.to_string())?;
    c.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;
    // The sign-in page first: it is the page everybody sees.
    let mut failures = Vec::new();
    let mut pages = vec![("/login".to_owned(), violations(c, axe).await?)];
    type_into(c, "#name", "alice").await;
    type_into(c, "#password", PASSWORD).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    if path_of(c).await != "/queue" {
        return Err(format!("not signed in: {}", path_of(c).await));
    }
    for page in PAGES {
        c.goto(&format!("{base}{page}"))
            .await
            .map_err(|e| e.to_string())?;
        if path_of(c).await != *page {
            return Err(format!("{page} led to {}", path_of(c).await));
        }
        pages.push(((*page).to_owned(), violations(c, axe).await?));
    }
    for (page, found) in &pages {
        for (impact, what) in found {
            eprintln!("web_a11y: {page}: {impact}: {what}");
            if impact == "serious" || impact == "critical" {
                failures.push(format!("{page}: {impact}: {what}"));
            }
        }
    }

    // Reflow: at 320 CSS pixels wide no page scrolls sideways (tables scroll inside
    // themselves, which WCAG allows for data tables).
    c.set_window_size(320, 800)
        .await
        .map_err(|e| e.to_string())?;
    let inner = c
        .execute("return window.innerWidth;", vec![])
        .await
        .map_err(|e| e.to_string())?
        .as_u64()
        .unwrap_or(0);
    if inner > 400 {
        return Err(format!(
            "the window could not be made 320 px wide (innerWidth {inner})"
        ));
    }
    for page in std::iter::once("/login").chain(PAGES.iter().copied()) {
        if page == "/login" {
            continue;
        }
        c.goto(&format!("{base}{page}"))
            .await
            .map_err(|e| e.to_string())?;
        let wide = c
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?
            .as_i64()
            .unwrap_or(i64::MAX);
        if wide > 0 {
            // What sticks out (outside any box that scrolls by itself), to say where.
            let culprits = c
                .execute(
                    r#"var out = [];
                    document.querySelectorAll('body *').forEach(function (e) {
                      var r = e.getBoundingClientRect();
                      if (r.right > window.innerWidth + 1 && out.length < 6) {
                        var p = e.parentElement, inside = false;
                        while (p) { var o = getComputedStyle(p).overflowX;
                          if (o === 'auto' || o === 'scroll' || o === 'hidden') { inside = true; break; }
                          p = p.parentElement; }
                        if (!inside) out.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' (' + Math.round(r.width) + ' px)');
                      }
                    });
                    return out.join(', ');"#,
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            failures.push(format!(
                "{page}: at {inner} px wide the page scrolls sideways by {wide} px: {}",
                culprits.as_str().unwrap_or_default()
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} accessibility failures:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}
