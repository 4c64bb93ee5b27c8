//! Price tables from outside sources, converted to our price files (`xjp-gateway prices`).

pub mod litellm;
