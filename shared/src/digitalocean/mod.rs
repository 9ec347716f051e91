//! The DigitalOcean API client: typed models, pagination, retries and rate limits.

mod client;
mod error;
mod models;

pub use client::{Client, ClientConfig, RequestCounter, Token, DEFAULT_API_URL};
pub use error::ApiError;
pub use models::*;
