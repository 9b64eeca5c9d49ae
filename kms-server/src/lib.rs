//! kms-server: the `kms` binary's library. [`kms_core`]'s engine as an HTTP service speaking
//! Alibaba Cloud KMS's RPC API (version 2016-01-20), so the official Alibaba SDKs work against
//! it unchanged, and CLI commands for one-off work on a data directory.
//!
//! - [`config`]: the configuration file, access keys and the principals they act as.
//! - [`signature`]: V3 `ACS3-HMAC-SHA256` and V1 `HMAC-SHA1` canonicalization, pure functions.
//! - [`auth`]: verifies a request's signature, timestamp window and nonce.
//! - [`replay`]: the nonce caches per access key, and replay refusal across restarts.
//! - [`tls`]: rustls server configuration, reloadable; development certificates.
//! - [`audit`]: the hash-chained, ActionTrail-shaped audit trail.
//! - [`ratelimit`]: request quotas per access key and action class.
//! - [`metrics`]: Prometheus metrics.
//! - [`request`]: decodes the query string and form body into parameters.
//! - [`dispatch`]: the table from Action to engine method.
//! - [`response`]: the JSON error shape and the protocol's error codes.
//! - [`server`]: the HTTP service, background maintenance, graceful shutdown.
//! - [`cli`]: the command line.
//! - [`xks`]: the external key proxy client (external keys) and its protocol.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod instance;
pub mod metrics;
pub mod ratelimit;
pub mod replay;
pub mod request;
pub mod response;
pub mod server;
pub mod signature;
pub mod tls;
pub mod xks;

pub use server::{open_engine, Server, ServerError};
