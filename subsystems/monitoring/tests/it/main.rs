//! Integration tests of rust-ai-ide-monitoring: the real OS, the HTTP exporter, promtool.

mod exporter;
mod promtool;
mod system;
