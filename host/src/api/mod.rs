//! What clients see: the error type and its per-format shapes, response bodies, and the
//! answers of the admin, billing and ops endpoints.

pub mod body;
pub mod error;
pub mod output_cap;
pub mod request;
pub mod respond;

pub use body::{Body, full, json_response};
pub use error::{ErrorClass, GatewayError};
pub use respond::{ApiError, ApiResult};
