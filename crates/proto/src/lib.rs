//! Wire types of the vouchsafe HTTP API (`…Request` in, `…Response` out) and
//! the stable error codes of API.md. These are the shapes clients see; the
//! OpenAPI document is generated from them.
//!
//! This crate owns field names and JSON shapes only. It must not validate
//! (the server turns requests into domain values) or depend on other crates
//! of the workspace.

mod callers;
mod error;
mod events;
mod twilio;
mod users;
mod v1;
mod verify;

pub use callers::*;
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use events::*;
pub use twilio::*;
pub use users::*;
pub use v1::*;
pub use verify::*;
