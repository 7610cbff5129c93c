//! Integration tests of `MultiLevelCache` against a real Redis (see `fixture` for how one is found).

mod degradation;
mod fixture;
mod invalidation;
mod tiers;
mod ttl;
