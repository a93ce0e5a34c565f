//! Criterion benchmarks of lib-auth live in `benches/`: `validation` (warm and cold paths
//! through the tower stack, against a bare `jsonwebtoken::decode`) and `rbac` (uncached
//! decisions, against casbin-rs enforcing the same policy). Run them with
//! `cargo bench -p lib-auth-benches`; results are recorded in `BENCHMARKS.md`.
