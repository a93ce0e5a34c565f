//! The library half of lib-auth's examples: services whose routers the binaries serve and the
//! integration tests start on loopback.
//!
//! - [`ledger`]: an in-memory Midaz-like ledger guarded by lib-auth (binary `ledger`).
//! - [`grpc_ledger`]: a small gRPC ledger service guarded per method (binary `grpc-ledger`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod grpc_ledger;
pub mod ledger;
