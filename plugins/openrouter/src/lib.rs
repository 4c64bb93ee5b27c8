//! openrouter billing plugin (being written).
