//! A DigitalOcean API simulator on loopback: the endpoints dropletguard reads and writes, with
//! the spec's shapes and status codes, the platform's firewall limits, pagination with absolute
//! links, rate-limit headers, a bearer-token check, fault injection, and a seeded fleet
//! generator. Tests, benchmarks and the demo all use it over real HTTP.

mod account;
mod api;
pub mod fleet;
pub mod inject;
pub mod lambda;
mod process;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use api::{MAX_DROPLETS_BY_ID, MAX_RULES, MAX_TAGS};
pub use fleet::{FleetSpec, Profile, FLEET_POLICY, MANAGEMENT_CIDR};
pub use inject::{Override, StreamedBody};
pub use process::SimProcess;
pub use state::{ExpectedFinding, Faults, LoggedRequest, SimDroplet, State};

/// A running simulator. Dropping it does not stop the server; call [`Sim::shutdown`].
pub struct Sim {
    pub addr: SocketAddr,
    pub token: String,
    state: Arc<Mutex<State>>,
    listing: api::Listing,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sim {
    /// Serves `state` on `listen` (port 0 picks a free port) with a bearer `token`.
    pub async fn start(listen: SocketAddr, token: &str, state: State) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let listing = api::Listing::default();
        let app = api::App {
            state: state.clone(),
            token: Arc::new(token.to_string()),
            listing: listing.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = api::router(app);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Sim {
            addr,
            token: token.to_string(),
            state,
            listing,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Starts on a free loopback port.
    pub async fn start_local(token: &str, state: State) -> std::io::Result<Sim> {
        Sim::start(SocketAddr::from(([127, 0, 0, 1], 0)), token, state).await
    }

    /// The base URL for `DIGITALOCEAN_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` with the account state locked.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut st);
        // `f` may have changed the Droplets: forgotten before any page can read them (the
        // state lock, then the listing's, as a page takes them).
        self.listing.forget();
        out
    }

    pub fn set_faults(&self, faults: Faults) {
        self.with_state(|s| s.faults = faults);
    }

    /// The API requests answered so far (controls excluded).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.with_state(|s| s.log.clone())
    }

    pub fn clear_requests(&self) {
        self.with_state(|s| s.log.clear());
    }

    pub fn expected(&self) -> Vec<ExpectedFinding> {
        self.with_state(|s| s.expected.clone())
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
