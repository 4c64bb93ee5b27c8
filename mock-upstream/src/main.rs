//! Mock upstream binary (being written).
fn main() {}
