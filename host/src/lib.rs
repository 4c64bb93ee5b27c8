//! xjp-gateway: an LLM billing gateway.
