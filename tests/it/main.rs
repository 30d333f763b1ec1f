//! The integration tests, one binary (as ripgrep does): every module links the detection core and
//! tract once, and the detectors in `common` are built once for all of them.
//!
//!     cargo test --all-features --test it            # all of them
//!     cargo test --all-features --test it lambda     # one module, by name

mod common;

mod annotated;
mod backends;
mod batch;
mod cli;
mod eval;
mod exports;
mod heads;
mod image_sources;
mod inputs;
mod lambda_events;
mod metrics;
mod parity;
mod plan;
