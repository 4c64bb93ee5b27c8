//! gemini billing plugin (being written).
