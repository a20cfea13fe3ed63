//! Real-browser tests: headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol by `chromiumoxide`, against the real server. They stand where people stand: the
//! browser enforces the Content-Security-Policy, follows redirects and meta refreshes, keeps
//! cookies per host and runs no test-side shortcuts. Every tab fails its test on any CSP
//! violation, console error or uncaught exception on any page it visited.
//!
//! Without a browser the tests are skipped with a notice, except under `CI=true`, where a
//! missing browser fails them. `PORTCULLIS_TEST_CHROMIUM` names the executable when it is not
//! `chromium` (or `chromium-browser`, `google-chrome`) on the `PATH`.

mod accounts;
mod passkeys;
mod relying_app;
mod two_step;
mod upstream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::BrowserConfig;
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::page::EventFrameNavigated;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use futures::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

/// Two browsers at a time on this 2-core machine; more only makes every test slower.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// How long a person would wait for a page before deciding it is stuck.
const PAGE_WAIT: Duration = Duration::from_secs(15);

/// Reports a CSP violation in the page's console (the browser logs most of them itself; this
/// also catches the ones it only fires as events). Injected by the test, not served by us.
const CSP_LISTENER: &str = "document.addEventListener('securitypolicyviolation', (e) => \
     console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));";

fn chromium_executable() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PORTCULLIS_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// One Chromium process with a profile of its own.
pub struct Browser {
    inner: chromiumoxide::Browser,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

impl Browser {
    /// `None` (with a printed notice) when no browser is installed outside CI.
    pub async fn launch() -> Option<Self> {
        let Some(executable) = chromium_executable() else {
            if std::env::var_os("CI").is_some() {
                panic!("CI needs Chromium for the browser tests: apt-get install chromium");
            }
            // Once per run, and past the test harness's output capture, so it is seen.
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "notice: no Chromium found (install Debian's `chromium` or set \
                     PORTCULLIS_TEST_CHROMIUM): the browser tests are skipped"
                );
            });
            return None;
        };
        let slot = BROWSERS.acquire().await.expect("browser slots");
        let profile = tempfile::tempdir().expect("browser profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .user_data_dir(profile.path())
            .no_sandbox()
            .new_headless_mode()
            .disable_https_first()
            .window_size(1024, 900)
            .viewport(None)
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(30))
            .build()
            .expect("browser config");
        let (inner, mut handler) = chromiumoxide::Browser::launch(config)
            .await
            .expect("Chromium starts");
        let handler = tokio::spawn(async move {
            // Messages this crate version cannot parse are skipped, not fatal.
            while let Some(event) = handler.next().await {
                let _ = event;
            }
        });
        Some(Self {
            inner,
            handler,
            _profile: profile,
            _slot: slot,
        })
    }

    /// A new window with cookies of its own, as a second browser would have.
    pub async fn window(&self) -> Tab {
        let context = self
            .inner
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("a browser context");
        let params = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context)
            .build()
            .expect("target params");
        let page = self.inner.new_page(params).await.expect("a new page");
        Tab::watch(page).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

/// One window: navigates, types, presses, and records every problem the browser reports.
pub struct Tab {
    page: Page,
    problems: Arc<Mutex<Vec<String>>>,
    /// Every address the window showed as its page.
    documents: Arc<Mutex<Vec<String>>>,
    listeners: Vec<JoinHandle<()>>,
}

impl Drop for Tab {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

impl Tab {
    async fn watch(page: Page) -> Self {
        let problems = Arc::new(Mutex::new(Vec::new()));
        let documents = Arc::new(Mutex::new(Vec::new()));
        let mut listeners = Vec::new();

        let mut log = page
            .event_listener::<EventEntryAdded>()
            .await
            .expect("log events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(event) = log.next().await {
                if event.entry.level == LogEntryLevel::Error {
                    let at = event.entry.url.clone().unwrap_or_default();
                    record(&sink, format!("console: {} ({at})", event.entry.text));
                }
            }
        }));
        let mut navigations = page
            .event_listener::<EventFrameNavigated>()
            .await
            .expect("navigation events");
        let shown = documents.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(event) = navigations.next().await {
                if event.frame.parent_id.is_none() {
                    record(&shown, event.frame.url.clone());
                }
            }
        }));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .expect("console events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if matches!(
                    event.r#type,
                    ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert
                ) {
                    let text: Vec<String> = event
                        .args
                        .iter()
                        .map(|arg| match &arg.value {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => arg.description.clone().unwrap_or_default(),
                        })
                        .collect();
                    record(&sink, format!("console.error: {}", text.join(" ")));
                }
            }
        }));
        let mut exceptions = page
            .event_listener::<EventExceptionThrown>()
            .await
            .expect("exception events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                let details = &event.exception_details;
                record(
                    &sink,
                    format!(
                        "uncaught exception: {} ({})",
                        details.text,
                        details.url.clone().unwrap_or_default()
                    ),
                );
            }
        }));
        page.enable_log().await.expect("enable the log");
        page.enable_runtime().await.expect("enable the runtime");
        page.evaluate_on_new_document(CSP_LISTENER)
            .await
            .expect("install the CSP listener");
        Self {
            page,
            problems,
            documents,
            listeners,
        }
    }

    /// Opens `url` as if typed into the address bar, and waits until the page has settled.
    pub async fn open(&self, url: &str) {
        self.mark().await;
        // A navigation that ends in a redirect to an unreachable address still "loads".
        let _ = tokio::time::timeout(PAGE_WAIT, self.page.goto(url)).await;
        self.settle(&format!("open {url}")).await;
    }

    /// Presses the button (or follows the link) whose text is `label`, and waits until the
    /// next page has settled (a page that moves on by itself counts as not yet settled).
    pub async fn press(&self, label: &str) {
        self.press_in("", label).await;
    }

    /// The same, for the first such button inside the element that the XPath `scope` names.
    pub async fn press_in(&self, scope: &str, label: &str) {
        let quoted = xpath_literal(label);
        let xpath = format!(
            "{scope}//button[normalize-space()={quoted}] | {scope}//a[normalize-space()={quoted}] | \
             {scope}//input[@type='submit' and @value={quoted}]"
        );
        let Ok(element) = self.page.find_xpath(&xpath).await else {
            panic!(
                "no button or link {label:?} on {}; it reads:\n{}\nproblems:\n{}",
                self.url().await,
                self.text().await,
                self.problems_text()
            );
        };
        self.mark().await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("press {label:?}: {e}"));
        self.settle(&format!("press {label:?}")).await;
    }

    /// Presses the button `label` where pressing it is not expected to leave the page (a
    /// script answers in place).
    pub async fn press_in_place(&self, label: &str) {
        let quoted = xpath_literal(label);
        let xpath = format!("//button[normalize-space()={quoted}]");
        let Ok(button) = self.page.find_xpath(&xpath).await else {
            panic!("no button {label:?} on {}", self.url().await);
        };
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("press {label:?}: {e}"));
    }

    /// Waits until the page says `words`, as a person waits for a message to appear.
    pub async fn wait_to_read(&self, words: &str) {
        let started = Instant::now();
        while !self.text().await.contains(words) {
            if started.elapsed() > PAGE_WAIT {
                panic!(
                    "{words:?} never appeared on {}; it reads:\n{}\nproblems:\n{}",
                    self.url().await,
                    self.text().await,
                    self.problems_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens the disclosure (`<details>`) whose summary reads `label`; nothing navigates.
    pub async fn disclose(&self, label: &str) {
        let xpath = format!("//summary[normalize-space()={}]", xpath_literal(label));
        let Ok(summary) = self.page.find_xpath(&xpath).await else {
            panic!("no {label:?} to open on {}", self.url().await);
        };
        summary
            .click()
            .await
            .unwrap_or_else(|e| panic!("open {label:?}: {e}"));
    }

    /// From the next page on, the browser says it cannot offer passkeys in autofill (as
    /// browsers without conditional mediation do), so passkeys are used from the button only.
    /// Chromium's virtual authenticator would otherwise answer the autofill request at once.
    pub async fn without_passkey_autofill(&self) {
        self.page
            .evaluate_on_new_document(
                "if (window.PublicKeyCredential) { \
                 PublicKeyCredential.isConditionalMediationAvailable = async () => false; }",
            )
            .await
            .expect("install the override");
    }

    /// Waits until the window has moved on, by itself, to `path`.
    pub async fn wait_until_at(&self, path: &str) {
        let started = Instant::now();
        loop {
            // No document answers while the next one loads.
            let here: Option<String> = self.eval("location.pathname").await;
            if here.as_deref() == Some(path) {
                break;
            }
            if started.elapsed() > PAGE_WAIT {
                self.assert_at(path).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.settle(&format!("move on to {path}")).await;
    }

    /// The DevTools page, for what only the protocol can do (a virtual authenticator).
    pub fn devtools(&self) -> &Page {
        &self.page
    }

    /// Types `value` into the field named `name`, replacing what it held.
    pub async fn fill(&self, name: &str, value: &str) {
        let selector = format!("[name=\"{name}\"]");
        let element = self
            .page
            .find_element(&selector)
            .await
            .unwrap_or_else(|_| panic!("no field {name:?} on this page"));
        self.page
            .evaluate(format!(
                "document.querySelector('{}').value = ''",
                selector.replace('\'', "\\'")
            ))
            .await
            .expect("clear the field");
        element.click().await.expect("focus the field");
        element.type_str(value).await.expect("type");
    }

    /// The address the window shows.
    pub async fn url(&self) -> url::Url {
        let href: String = self.eval("location.href").await.expect("location");
        url::Url::parse(&href).expect("a URL")
    }

    /// What the person reads on the page.
    pub async fn text(&self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .unwrap_or_default()
    }

    /// The text of each element that the CSS `selector` matches.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let expression = format!(
            "Array.from(document.querySelectorAll({})).map((e) => e.textContent.trim())",
            serde_json::Value::from(selector)
        );
        self.eval(&expression).await.unwrap_or_default()
    }

    /// How many elements the CSS `selector` matches.
    pub async fn count(&self, selector: &str) -> usize {
        self.texts(selector).await.len()
    }

    /// Asserts the page says `words`.
    pub async fn assert_reads(&self, words: &str) {
        let text = self.text().await;
        assert!(
            text.contains(words),
            "expected {words:?} on {}, the page reads:\n{text}",
            self.url().await
        );
    }

    /// Asserts the window is at `path` of our server.
    pub async fn assert_at(&self, path: &str) {
        let url = self.url().await;
        assert_eq!(
            url.path(),
            path,
            "the browser is at {url}; it reads:\n{}\nproblems:\n{}",
            self.text().await,
            self.problems_text()
        );
    }

    /// Every CSP violation, console error and exception so far must be none.
    ///
    /// Chromium also logs a page's own 4xx status ("Failed to load resource: … 401") as an
    /// error. A page answered with 401 or 429 on purpose (a wrong password) is for the test to
    /// assert through what the person reads, so that one line is left out for the addresses the
    /// window showed as pages; a failed stylesheet, icon or script still counts.
    pub fn assert_no_problems(&self) {
        let documents = self.documents.lock().expect("documents").clone();
        let problems: Vec<String> = self
            .problems
            .lock()
            .expect("problems")
            .iter()
            .filter(|p| {
                !(p.starts_with(
                    "console: Failed to load resource: the server responded with a status of 4",
                ) && documents.iter().any(|d| p.ends_with(&format!("({d})"))))
            })
            .cloned()
            .collect();
        assert!(
            problems.is_empty(),
            "the browser reported problems:\n{}",
            problems.join("\n")
        );
    }

    /// Evaluates an expression in the page, `None` while no document can answer.
    async fn eval<T: serde::de::DeserializeOwned>(&self, expression: &str) -> Option<T> {
        let result = tokio::time::timeout(
            Duration::from_secs(3),
            self.page.evaluate_expression(expression),
        )
        .await
        .ok()?
        .ok()?;
        result.into_value().ok()
    }

    /// Marks the current document, so that `settle` can tell when another one has replaced it.
    async fn mark(&self) {
        let _: Option<bool> = self.eval("window.__stillThisPage = true").await;
    }

    /// Waits until a new document has loaded completely and does not move on by itself.
    async fn settle(&self, what: &str) {
        let started = Instant::now();
        loop {
            let state: Option<(bool, String, bool)> = self
                .eval(
                    "[window.__stillThisPage === true, document.readyState, \
                     document.querySelector('meta[http-equiv=refresh]') !== null]",
                )
                .await;
            if let Some((false, ready, false)) = &state
                && ready == "complete"
            {
                return;
            }
            if started.elapsed() > PAGE_WAIT {
                panic!(
                    "{what}: the browser stayed on {} (state {state:?}); it reads:\n{}\nproblems:\n{}",
                    self.last_known_url().await,
                    self.text().await,
                    self.problems_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The frame's URL as the driver last saw it (answers even while the page is loading).
    async fn last_known_url(&self) -> String {
        tokio::time::timeout(Duration::from_secs(3), self.page.url())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default()
    }

    fn problems_text(&self) -> String {
        self.problems.lock().expect("problems").join("\n")
    }
}

fn record(sink: &Mutex<Vec<String>>, problem: String) {
    if let Ok(mut problems) = sink.lock() {
        problems.push(problem);
    }
}

/// `text` as an XPath string literal.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else {
        format!("\"{text}\"")
    }
}
