//! Integration tests of the orchestrator: selection, latency tracking, balancing, failover and stats over scripted models, and real quantized models.

mod failover;
mod fixture;
mod quantized;
mod selection;
