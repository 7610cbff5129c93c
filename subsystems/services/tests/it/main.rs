//! Integration tests of rust-ai-ide-services: lazy initialisation, failures and retries,
//! the resource limiter, shutdown, property tests over random graphs and a seeded stress test.

mod failures;
mod fixture;
mod lazy;
mod limits;
mod props;
mod shutdown;
mod stress;
