//! mediaedge: a private media store with an edge cache, on-the-fly image
//! transforms, access control and presigned uploads, in one binary.
//!
//! See `ARCHITECTURE.md` for the module map and the life of a request.

pub mod allocator;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod dashboard;
pub mod header_values;
pub mod http;
pub mod journal;
pub mod key;
#[cfg(test)]
mod layout_tests;
pub mod media_info;
pub mod media_type;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod reencode;
pub mod route_prefix;
pub mod server;
pub mod slices;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod transform;
pub mod upload;
pub mod variant;
