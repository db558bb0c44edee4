//! The staff page is accessible (issue 17, item 9): every page, signed in, passes axe-core
//! (the npm package, pinned in tests/axe/, run inside the real headless Chromium of the
//! browser test) with no serious or critical violation of WCAG 2.1 A/AA, and every page fits
//! a 320-pixel-wide screen without scrolling sideways (WCAG 1.4.10, reflow).
//!
//! Needs what `scripts/install-browser` installs (Chromium, chromedriver, axe-core). Without
//! them the test fails when `CI` is set and is skipped, loudly, otherwise.

use crate::web_browser::{Browsing, instance, path_of, sign_in, type_into};
use fantoccini::Client;
use fantoccini::key::Key;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Run `body` against the staff page of the browser test's instance in a fresh Chromium, or
/// skip (fail in CI) when the browser or `extra` is missing.
async fn in_chromium<F, Fut>(extra: Result<(), String>, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (_instance, store, cfg) = instance().await;
    let Some(mut b) = Browsing::start(&store, &cfg, extra).await else {
        return;
    };
    let client = b.session().await;
    let outcome = body(client.clone(), b.base.clone()).await;
    b.finish(vec![client], outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_core_and_fits_a_320_pixel_screen() {
    let axe = axe_source();
    let found = axe.as_ref().map(|_| ()).map_err(Clone::clone);
    in_chromium(found, |c, base| async move {
        check(&c, &base, axe.as_deref().unwrap_or_default()).await
    })
    .await;
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
    c.goto(&format!("{base}/login"))
        .await
        .map_err(|e| e.to_string())?;
    // The sign-in page first: it is the page everybody sees.
    let mut failures = Vec::new();
    let mut pages = vec![("/login".to_owned(), violations(c, axe).await?)];
    sign_in(c, base, "alice").await?;
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

/// Keys on the staff page (issue 17): `j`/`k` pick a request in the queue and `o` opens it;
/// on its page `c`, `a` and `r` go to the comment box, the apply form and the reject message;
/// Ctrl+Enter sends the reject form; `?` shows the list of keys and Escape hides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_and_a_request_are_worked_from_the_keyboard() {
    in_chromium(Ok(()), |c, base| async move { keyboard(&c, &base).await }).await;
}

async fn press(c: &Client, keys: &str) -> Result<(), String> {
    c.active_element()
        .await
        .map_err(|e| e.to_string())?
        .send_keys(keys)
        .await
        .map_err(|e| format!("pressing {keys:?}: {e}"))
}

async fn js(c: &Client, script: &str) -> Result<serde_json::Value, String> {
    c.execute(script, vec![])
        .await
        .map_err(|e| format!("{script}: {e}"))
}

/// The focused element: its link, else the action of its form and its id.
async fn focused(c: &Client) -> Result<String, String> {
    Ok(js(
        c,
        "var e = document.activeElement; if (!e) return ''; if (e.getAttribute('href')) return e.getAttribute('href'); \
         return (e.form ? e.form.getAttribute('action') + ' ' : '') + (e.id || e.tagName);",
    )
    .await?
    .as_str()
    .unwrap_or_default()
    .to_owned())
}

async fn keyboard(c: &Client, base: &str) -> Result<(), String> {
    sign_in(c, base, "alice").await?;
    let links: Vec<String> = serde_json::from_value(
        js(
            c,
            "return Array.from(document.querySelectorAll('table.list tbody tr a[href^=\"/requests/\"]')).map(function (a) { return a.getAttribute('href'); });",
        )
        .await?,
    )
    .map_err(|e| e.to_string())?;
    if links.len() < 2 {
        return Err(format!("the queue should list held requests: {links:?}"));
    }
    press(c, "j").await?;
    if focused(c).await? != links[0] {
        return Err(format!(
            "j: focus on {}, not {}",
            focused(c).await?,
            links[0]
        ));
    }
    press(c, "j").await?;
    if focused(c).await? != links[1] {
        return Err(format!(
            "j j: focus on {}, not {}",
            focused(c).await?,
            links[1]
        ));
    }
    press(c, "k").await?;
    if focused(c).await? != links[0] {
        return Err(format!("j j k: focus on {}", focused(c).await?));
    }
    if js(c, "return document.querySelectorAll('tr.picked').length;").await? != 1 {
        return Err("one row is marked picked".into());
    }
    let help_shown = "return !document.getElementById('keys-help').hidden;";
    press(c, "?").await?;
    if js(c, help_shown).await? != true {
        return Err("? shows the list of keys".into());
    }
    press(c, &Key::Escape.to_string()).await?;
    if js(c, help_shown).await? != false {
        return Err("Escape hides the list of keys".into());
    }
    // `o` opens the picked request (the first).
    js(c, "document.activeElement.blur(); return 0;").await?;
    press(c, "o").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while path_of(c).await != links[0] {
        if Instant::now() > deadline {
            return Err(format!("o led to {}, not {}", path_of(c).await, links[0]));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reference = links[0].trim_start_matches("/requests/").to_owned();

    // On the request: c, a and r reach their forms (a letter typed in a field is the field's).
    for (key, form) in [("c", "comment"), ("a", "apply"), ("r", "reject")] {
        js(c, "document.activeElement.blur(); return 0;").await?;
        press(c, key).await?;
        let at = focused(c).await?;
        let expected = format!("/requests/{reference}/{form} ");
        if !at.starts_with(&expected) {
            return Err(format!("{key}: focus on {at}, not {expected}"));
        }
    }
    // The reject message, sent with Ctrl+Enter from the text box.
    type_into(
        c,
        "#reject-message",
        "Please ask your practice manager to send this.",
    )
    .await;
    press(c, &format!("{}{}", Key::Control, Key::Enter)).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = c.source().await.map_err(|e| e.to_string())?;
        if page.contains("rejected by alice") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("Ctrl+Enter did not send the reject form:\n{page}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
