//! Errors of the scenario library.

use std::path::PathBuf;

/// What can go wrong while preparing or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Serializing the results failed.
    #[error("cannot serialize results: {0}")]
    Json(#[source] serde_json::Error),
    /// The subsystem under test returned an error.
    #[error("{subject} failed in {scenario}: {message}")]
    Subject {
        /// The scenario id.
        scenario: String,
        /// The subject that failed.
        subject: String,
        /// The subsystem's error, rendered.
        message: String,
    },
}
