//! dropletguard's library: everything that decides or talks to DigitalOcean.
//!
//! Data flows one way: fetch a [`Snapshot`] of the account, [`evaluate`] it against a
//! [`Policy`] (pure), then render a [`report::Report`].

pub mod audit;
pub mod aws;
pub mod catalog;
pub mod digitalocean;
pub mod evaluate;
pub mod exemptions;
pub mod grace;
pub mod history;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod remediate;
pub mod report;
pub mod rules;
pub mod service;
pub mod snapshot;
pub mod ssh;
pub mod ssh_audit;
pub mod store;
pub mod text;
pub mod webhook;

pub use evaluate::{evaluate, Scope, Snapshot};
pub use policy::Policy;
