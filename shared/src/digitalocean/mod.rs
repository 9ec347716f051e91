//! The DigitalOcean API client: typed models, pagination, retries and rate limits.

mod account;
mod budget;
mod client;
mod config;
mod droplets;
mod error;
mod firewalls;
mod models;
mod paging;
mod tags;
mod vpcs;

pub use budget::RateLimit;
pub use client::Client;
pub use config::{
    ClientConfig, RequestCounter, Reserve, Token, DEFAULT_API_URL, MAX_BODY_BYTES, MAX_LIST_ITEMS,
};
pub use error::ApiError;
pub use models::*;
pub use paging::Listed;
