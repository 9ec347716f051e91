//! End-to-end tests: the real `dropletguard` binary and the DigitalOcean client against the
//! simulator, over real HTTP on loopback. One test binary, modules by area.

mod audit;
mod client;
mod fixtures;
mod formats;
mod helpers;
mod hostile_api;
mod quarantine;
mod remediation;
mod simulator;
mod ssh_audit;
mod store_s3;
mod webhook_cli;
