//! The integration tests: one test binary, so the crate is linked once for all of them.
//! Each module was a test binary of its own; the shared set-up (a real `docker-registry`, Git
//! servers over file://, `git http-backend` and SSH, a fake of GitHub's API, and a running
//! `tagsmith run`) lives in `support`, `gitserver` and `github_fake`, declared once here.
//!
//! Run one module with `cargo test --test integration <module>::`, e.g.
//! `cargo test --test integration run_service::`. Files the tests read (fixtures,
//! conformance cases, the node tools) stay under `tests/` and are found through
//! `CARGO_MANIFEST_DIR`. A new test file goes next to this one with a `mod` line below.

// The `json!` documents of the GitHub fake's tests nest deeper than the default allows.
#![recursion_limit = "256"]

mod gitea_fake;
mod github_fake;
mod gitlab_fake;
mod gitserver;
mod support;

mod argocd_config;
mod argocd_crd;
mod argocd_once;
mod argocd_strategies;
mod check;
mod cli_completions;
mod cli_policy;
mod config;
mod config_examples;
mod config_schema;
mod cue_grammar;
mod dashboard;
mod docs_commands;
mod flux_config;
mod flux_git;
mod flux_once;
mod flux_run;
mod flux_secrets;
mod gates;
mod git_config;
mod git_delivery;
mod git_push;
mod git_ssh;
mod git_workspace;
mod help_readme;
mod holds;
mod kubernetes_examples;
mod notify;
mod objects_props;
mod once;
mod policy_conformance;
mod policy_live;
mod policy_props;
mod pull_request;
mod pull_request_config;
mod pull_request_gitea;
mod pull_request_gitlab;
mod pull_request_lease;
mod quickstart;
mod registry;
mod registry_alias;
mod registry_auth;
mod registry_cli;
mod registry_faults;
mod rewrite_cli;
mod rewrite_cue_eval;
mod rewrite_flux_markers;
mod rewrite_golden;
mod rewrite_large;
mod rewrite_props;
mod rewrite_walk;
mod run;
mod run_service;
mod select_shared;
mod status_cli;
mod webhooks;
mod webhooks_config;
mod webhooks_faults;
mod webhooks_logs;
mod webhooks_registry;
