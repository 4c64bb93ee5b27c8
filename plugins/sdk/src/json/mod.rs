//! Reading JSON, in one place: [`from_slice`] reads a body as any serde type, fast and
//! always with serde_json's result (the `xjp-json-scan` crate); [`read`] and [`parse`] do
//! the same and report a malformed body as a [`PluginError`]; [`lenient`] has the typed
//! readers that pick out a few fields and skip the rest; [`parse_unique`] parses a request
//! and refuses a key repeated in one object; and the helpers below look values up in a
//! [`Value`] without panicking, saturating instead of overflowing.

pub mod lenient;
mod number_text;
mod unique;
mod usd;
mod value;

pub use number_text::{number_text, value_text};
pub use unique::{parse_unique, quoted};
pub use value::AnyValue;

pub use serde_json::Value;
pub use xjp_json_scan::from_slice;

use crate::PluginError;
use serde::Deserialize;

/// Reads a body as `T` with [`from_slice`], or reports where it is malformed.
pub fn read<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, PluginError> {
    from_slice(body).map_err(|e| PluginError::Malformed(format!("invalid JSON: {e}")))
}

/// Parses a body as a [`Value`] (read as [`AnyValue`]), or reports where it is malformed.
pub fn parse(body: &[u8]) -> Result<Value, PluginError> {
    read::<AnyValue>(body).map(|v| v.0)
}

/// The value at `path` (object keys), if every step exists.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

/// A token count at `path`: non-negative integers only (floats with no fraction are
/// accepted, negative or fractional values are treated as absent).
pub fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let n = at(v, path)?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

/// A token count at `path`, or zero when absent.
pub fn u64_or_zero(v: &Value, path: &[&str]) -> u64 {
    u64_at(v, path).unwrap_or(0)
}

/// A string at `path`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// Whether the body is an error object (`{"error": {...}}` or `{"type":"error"}`).
pub fn is_error_body(v: &Value) -> bool {
    v.get("error").is_some_and(|e| !e.is_null()) || v.get("type").and_then(Value::as_str) == Some("error")
}

/// `a - b`, never below zero.
pub fn sat_sub(a: u64, b: u64) -> u64 {
    a.saturating_sub(b)
}
