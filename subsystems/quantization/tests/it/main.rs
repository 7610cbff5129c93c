//! Integration tests of rust-ai-ide-quantization: accuracy against an f64 reference, file round trips, precision selection.

mod accuracy;
mod files;
mod reference;
mod selection;
