//! Standard Webhooks v1: signature verification, signing, a replay guard,
//! and parsing of dropletguard's event bodies.
//!
//! A delivery carries three headers:
//!
//! - `webhook-id`: the message id, the same on every retry of a message;
//! - `webhook-timestamp`: the attempt's time, decimal unix seconds;
//! - `webhook-signature`: one or more space-separated `v1,<base64>` entries,
//!   each an HMAC-SHA256 of `{id}.{timestamp}.{raw body}` under a secret.
//!
//! The HMAC key is the base64 decoding of the secret, after an optional
//! `whsec_` prefix. Several secrets may be configured at once, so that a
//! sender can rotate its secret without a gap; any `v1` entry that matches
//! any secret is enough.
//!
//! The intended order on receipt is: limit the body to [`MAX_BODY`] bytes,
//! [`verify`] it against the raw bytes as received, check the returned id
//! with a [`ReplayGuard`], and only then [`parse_event`]. Never parse and
//! re-serialise the body before verifying: the signature covers the exact
//! bytes.

mod event;
mod replay;
mod verify;

pub use event::{parse_event, Event, EventError};
pub use replay::ReplayGuard;
pub use verify::{
    sign, verify, Secret, Verified, VerifyError, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    MAX_BODY, TOLERANCE_SECS,
};
