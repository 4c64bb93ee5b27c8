//! The `xjp-gateway` binary.
fn main() {}
