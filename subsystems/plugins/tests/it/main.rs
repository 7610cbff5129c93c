//! Integration tests of the plugin marketplace: install, update, uninstall, the remote
//! registry over HTTP, and every hostile plugin of the issue.

mod fixture;
mod hostile;
mod lifecycle;
mod remote;
