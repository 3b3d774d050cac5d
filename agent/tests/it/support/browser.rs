//! A headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): the few WebDriver commands the Web UI's tests use,
//! over the HTTP client the tests already have. Every wait polls with a
//! deadline; on failure, [`Browser::keep_evidence`] saves a screenshot and
//! the browser's console log. Dropping a [`Browser`] ends its WebDriver
//! session, so that chromedriver quits Chromium, and then ends every
//! process left in the driver's process group.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use serde_json::{Value, json};

use super::{eventually, free_address, wait_for_listener};

/// How long a wait for the page lasts before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// The key WebDriver sends for Enter.
pub const ENTER: &str = "\u{E007}";

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, with its chromedriver process.
pub struct Browser {
    driver: Child,
    driver_address: SocketAddr,
    session: String,
    client: reqwest::Client,
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// Chromium of `width` × `height` through it.
    pub async fn start(width: u32, height: u32) -> Self {
        let address = free_address();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", address.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A process group of its own, which Chromium's processes join:
            // what is left of it when the test ends can be ended at once.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run chromedriver ({err}); install Debian's chromium and chromium-driver (scripts/test.sh does)")
            });
        wait_for_listener(address);
        let client = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new",
                // Chromium's sandbox needs unprivileged user namespaces or a
                // setuid helper; as root in a container it has neither and
                // Chromium refuses to start without this flag.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
            ]},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
        }}});
        let base = format!("http://{address}");
        let answer: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver opened no session: {answer}"))
            .to_owned();
        Self {
            driver,
            driver_address: address,
            session: format!("{base}/session/{session}"),
            client,
        }
    }

    /// Sends a WebDriver command; answers its `value`, or the error's.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let ok = response.status().is_success();
        let answer: Value = response.json().await.unwrap();
        let value = answer["value"].clone();
        if ok { Ok(value) } else { Err(value) }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Value> {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, Value> {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url}))
            .await
            .unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    }

    /// Runs `script` (a function body) with `args` in the page; answers
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
            .unwrap_or_else(|err| panic!("the script failed: {err}\n{script}"))
    }

    /// The elements matching a CSS selector now.
    pub async fn all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await
            .unwrap_or_else(|err| panic!("cannot look for {css}: {err}"));
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|element| Element {
                browser: self,
                id: element[ELEMENT].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// The first element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> Element<'_> {
        eventually(PAGE_WAIT, &format!("element {css}"), || async {
            self.all(css).await.into_iter().next()
        })
        .await
    }

    /// Waits until the text of the first element matching `css` holds
    /// every one of `words`, and answers that text.
    pub async fn text_with(&self, css: &str, words: &[&str]) -> String {
        let what = format!("{css} with {words:?}");
        eventually(PAGE_WAIT, &what, || async {
            let element = self.all(css).await.into_iter().next()?;
            let text = element.text().await?;
            words.iter().all(|word| text.contains(word)).then_some(text)
        })
        .await
    }

    /// Clicks the first element matching `css`, once there is one.
    pub async fn click(&self, css: &str) {
        let what = format!("clickable {css}");
        eventually(PAGE_WAIT, &what, || async {
            let element = self.all(css).await.into_iter().next()?;
            element.click().await.then_some(())
        })
        .await;
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.get("/url").await.unwrap().as_str().unwrap().to_owned()
    }

    /// Waits until the URL ends with `suffix`.
    pub async fn at(&self, suffix: &str) {
        eventually(PAGE_WAIT, &format!("URL ending with {suffix}"), || async {
            self.url().await.ends_with(suffix).then_some(())
        })
        .await;
    }

    /// The browser console's entries since the last call.
    pub async fn console(&self) -> Vec<Value> {
        let entries = self.post("/se/log", json!({"type": "browser"})).await;
        entries
            .ok()
            .and_then(|entries| entries.as_array().cloned())
            .unwrap_or_default()
    }

    /// Saves a screenshot and the console log into `dir`; answers the
    /// screenshot's path.
    pub async fn keep_evidence(&self, dir: &Path) -> PathBuf {
        let screenshot = dir.join("failure.png");
        if let Ok(Value::String(png)) = self.get("/screenshot").await {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png)
                .unwrap();
            std::fs::write(&screenshot, bytes).unwrap();
        }
        let console = serde_json::to_string_pretty(&self.console().await).unwrap();
        std::fs::write(dir.join("console.json"), console).unwrap();
        screenshot
    }
}

impl Browser {
    /// The process id of chromedriver, which leads the process group.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// Asks chromedriver to end the session, which quits Chromium and
    /// removes its profile. Drop cannot wait on the async client, so this
    /// is one plain HTTP/1.1 request over a socket.
    fn end_session(&self) {
        let path = self
            .session
            .strip_prefix(&format!("http://{}", self.driver_address))
            .expect("the session's URL is on the driver's address");
        let request = format!(
            "DELETE {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.driver_address
        );
        let ended = TcpStream::connect_timeout(&self.driver_address, Duration::from_secs(5))
            .and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                stream.write_all(request.as_bytes())?;
                // chromedriver answers once Chromium has quit.
                stream.read_to_end(&mut Vec::new())
            });
        if let Err(err) = ended {
            eprintln!("cannot end the WebDriver session: {err}");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.end_session();
        // Whatever the session left behind goes with its driver's group.
        let group = i32::try_from(self.driver.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("chromedriver's process id");
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    fn path(&self, action: &str) -> String {
        format!("/element/{}/{action}", self.id)
    }

    /// Its visible text; none when it went away meanwhile.
    pub async fn text(&self) -> Option<String> {
        let text = self.browser.get(&self.path("text")).await.ok()?;
        text.as_str().map(str::to_owned)
    }

    /// Clicks it; false when it cannot be clicked (yet).
    pub async fn click(&self) -> bool {
        self.browser
            .post(&self.path("click"), json!({}))
            .await
            .is_ok()
    }

    /// Types `text` into it, after clearing it.
    pub async fn type_text(&self, text: &str) {
        self.browser
            .post(&self.path("clear"), json!({}))
            .await
            .unwrap_or_else(|err| panic!("cannot clear the field: {err}"));
        self.browser
            .post(&self.path("value"), json!({"text": text}))
            .await
            .unwrap_or_else(|err| panic!("cannot type into the field: {err}"));
    }
}
