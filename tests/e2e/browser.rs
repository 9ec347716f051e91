//! A real headless browser for the HTML report's tests: Debian's `chromium` (installed by
//! `make setup`), driven over the Chrome DevTools Protocol on `--remote-debugging-pipe`
//! (file descriptors 3 and 4, NUL-terminated JSON messages; the transport Puppeteer and
//! Playwright use). The pipes are two FIFOs that a shell hands to the browser as fds 3 and 4,
//! so no WebSocket client and no network port is needed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BROWSER: &str = "chromium";
const TIMEOUT: Duration = Duration::from_secs(60);

/// One headless Chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    to: std::fs::File,
    from: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event received so far (console messages, exceptions, log entries, ...).
    pub events: Vec<Value>,
    _dir: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

impl Browser {
    /// Starts the browser with a fresh profile and a `width`×`height` window, no network
    /// services of its own, and opens one blank page with Runtime, Log and Page events on.
    pub fn start(width: u32, height: u32) -> Browser {
        let dir = tempfile::tempdir().expect("temp dir");
        let (inp, out) = (dir.path().join("in"), dir.path().join("out"));
        fifo(&inp);
        fifo(&out);
        let profile = dir.path().join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ];
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" --user-data-dir="$DG_PROFILE" --window-size="$DG_SIZE" 3<"$DG_IN" 4>"$DG_OUT""#)
            .arg(BROWSER)
            .args(args)
            .env("DG_PROFILE", &profile)
            .env("DG_SIZE", format!("{width},{height}"))
            .env("DG_IN", &inp)
            .env("DG_OUT", &out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        // The shell opens `in` for reading first, then `out` for writing: open in that order.
        let to = std::fs::OpenOptions::new()
            .write(true)
            .open(&inp)
            .expect("open the browser's input pipe");
        let reader = std::fs::File::open(&out).expect("open the browser's output pipe");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).map(|n| n > 0).unwrap_or(false) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _dir: dir,
        };
        b.open_page();
        b
    }

    fn open_page(&mut self) {
        let target = self.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        self.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(domain, json!({}));
        }
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> u64 {
        self.next_id += 1;
        let mut msg = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to the browser");
        self.next_id
    }

    /// Waits for a message that `want` accepts, keeping every event seen meanwhile.
    fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if want(&v) => return v,
                Ok(v) => {
                    if v.get("method").is_some() {
                        self.events.push(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("browser: no {what} within {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{BROWSER} exited waiting for {what} (is it installed? `make setup` installs it)"
                ),
            }
        }
    }

    fn result_of(&mut self, id: u64, method: &str) -> Value {
        let v = self.wait_for(method, |v| v["id"] == json!(id));
        assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
        v["result"].clone()
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params, None);
        self.result_of(id, method)
    }

    /// A command to the page's session; its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params, Some(self.session.clone()));
        self.result_of(id, method)
    }

    /// Opens a file and waits for its `load` event.
    pub fn open(&mut self, file: &Path) {
        let url = format!("file://{}", file.display());
        self.call("Page.navigate", json!({"url": url}));
        let session = self.session.clone();
        self.wait_for("Page.loadEventFired", |v| {
            v["method"] == "Page.loadEventFired" && v["sessionId"] == json!(session)
        });
    }

    /// Evaluates a JavaScript expression in the page; its value (JSON).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Console errors, uncaught exceptions and error log entries (CSP violations, failed
    /// loads) seen so far, as text.
    pub fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") if e["params"]["type"] == "error" => {
                    Some(format!("console.error {}", e["params"]["args"]))
                }
                Some("Runtime.exceptionThrown") => {
                    Some(format!("exception {}", e["params"]["exceptionDetails"]))
                }
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => {
                    Some(format!("log {}", e["params"]["entry"]))
                }
                _ => None,
            })
            .collect()
    }

    /// A PNG of the window (`full`: of the whole page), written to `path`.
    pub fn screenshot(&mut self, path: &Path, full: bool) -> PathBuf {
        let mut params = json!({"format": "png"});
        if full {
            let size = self.call("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
            params["captureBeyondViewport"] = json!(true);
            params["clip"] = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
        }
        let r = self.call("Page.captureScreenshot", params);
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64_decode(data);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
        path.to_path_buf()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64 screenshot")
}
