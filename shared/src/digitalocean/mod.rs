//! The DigitalOcean API client: typed models, pagination, retries and rate limits.

mod budget;
mod client;
mod error;
mod models;

pub use client::{
    Client, ClientConfig, Listed, RateLimit, RequestCounter, Reserve, Token, DEFAULT_API_URL,
    MAX_BODY_BYTES, MAX_LIST_ITEMS,
};
pub use error::ApiError;
pub use models::*;
