//! What clients see: the error type and its per-format shapes, response bodies.

pub mod body;
pub mod error;
pub mod request;

pub use body::{Body, full, json_response};
pub use error::{ErrorClass, GatewayError};
