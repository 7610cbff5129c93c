//! Integration tests of the balancer: routing properties, geo selection, health checks and the proxy on loopback.

mod fixture;
mod health;
mod proxy;
mod routing;
