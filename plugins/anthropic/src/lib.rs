//! anthropic billing plugin (being written).
