//! End-to-end tests: the real `dropletguard` binary and the DigitalOcean client against the
//! simulator, over real HTTP on loopback. One test binary, modules by area.

mod audit;
mod browser;
mod budget;
mod client;
mod deny;
mod events;
mod exactly_once;
mod first_hour;
mod fixtures;
mod formats;
mod helpers;
mod history;
mod hostile_api;
mod html_report;
mod output_snapshots;
mod quarantine;
mod remediation;
mod simulator;
mod ssh_audit;
mod ssh_posture;
mod store_s3;
mod targeted;
mod webhook_cli;
