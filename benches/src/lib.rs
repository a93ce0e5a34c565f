//! Criterion benchmarks of lib-auth live in `benches/`: `validation` (warm and cold paths
//! through the tower stack, against a bare `jsonwebtoken::decode`), `rbac` (uncached
//! decisions, against casbin-rs enforcing the same policy) and `decisions` (remote mode's
//! two-level decision cache: a hit in moka, a miss served from Valkey, a miss asked of the
//! service). Run them with
//! `cargo bench -p lib-auth-benches`; results are recorded in `BENCHMARKS.md`.
