//! tagsmith: keeps container image references in Git up to date.
//!
//! The pure core (`policy`, `rewrite`) works on values only; IO lives at the edges
//! (`registry`, `git`, `forge`, `server`) and `engine` sequences it. See `docs/` and the README.

pub mod cli;
pub mod config;
pub mod engine;
pub mod forge;
pub mod gate;
pub mod git;
pub mod grammars;
pub mod hold;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod rewrite;
pub mod secret;
pub mod server;
pub mod state;
pub mod status;
pub mod writeback;
