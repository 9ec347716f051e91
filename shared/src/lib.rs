//! dropletguard's library: everything that decides or talks to DigitalOcean.
//!
//! Data flows one way: fetch a [`Snapshot`] of the account, [`evaluate`] it against a
//! [`Policy`] (pure), then render a [`report::Report`].
//!
//! # Layers
//!
//! Read it from the bottom up: a module imports only from its own layer or the layers below
//! (`tests/tools/module_layers.py`, run by `.ci/run`, fails on an import from above and on any
//! import circle between files).
//!
//! - 0 vocabulary: catalog, net, text, report
//! - 1 adapters: digitalocean, aws, store, ssh, webhook
//! - 2 policy: policy
//! - 3 account read: snapshot
//! - 4 decisions: rules, evaluate, exemptions, grace, ssh_audit
//! - 5 record and render: history, metrics, report_page
//! - 6 audit: audit
//! - 7 act: remediate
//! - 8 entry points: service
//!
//! `report` at the bottom holds what every layer speaks of (findings, changes, the report and
//! its renderers, which read nothing); `report_page` groups the HTML page's matrix by VPC from
//! the account. `ssh_audit` fills a snapshot with what the SSH probe and the management
//! session saw, so it sits with the decisions that read it.

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
pub mod report_page;
pub mod rules;
pub mod service;
pub mod snapshot;
pub mod ssh;
pub mod ssh_audit;
pub mod store;
pub mod text;
pub mod webhook;

pub use evaluate::evaluate;
pub use policy::Policy;
pub use snapshot::{Scope, Snapshot};
