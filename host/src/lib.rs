//! # Switchyard: an edge proxy for LLM traffic with WebAssembly routing policies
//!
//! Every request is routed by its team's policy: a WebAssembly component (contract in
//! `wit/policy.wit`) that the proxy runs in a fresh sandbox per request to choose which model
//! serves it. The crate is laid out along the request path, and data flows one way along it:
//!
//! - [`config`]: the typed TOML configuration and its validation;
//! - [`server`]: the axum listener, routes and body limits, and the request path's handlers;
//! - [`auth`]: virtual API keys to teams;
//! - [`api`]: client wire formats (OpenAI chat completions and the Responses API, Anthropic
//!   messages, embeddings): parsing a request into a compact view, translation between them,
//!   errors in the client's shape;
//! - [`policy`]: loading, checking and canarying components, the live version of each policy, and
//!   running one sandboxed, validated decision per request;
//! - [`upstream`]: providers, the attempts along a route's fallback chain, live health, streams,
//!   usage and cost;
//! - [`telemetry`]: logging, including the one line written per request;
//! - [`label`]: the names every answer carries (team, policy version, model, provider), each made
//!   once with its header value; [`clock`]: the wall clock in the Unix seconds and milliseconds
//!   the wire formats and records write.
//!
//! Beside the path, [`control`] holds the live state the path reads (a snapshot swapped
//! atomically) and every change to it: config reloads, watched policy files, uploads and
//! rollbacks, and the team budgets requests are charged to; [`fleet`] shares budgets and rate
//! limits with the other replicas through Redis when `[state]` is set; [`admin`] exposes those
//! changes and the metrics on a listener of its own.
//!
//! Off the path, [`authoring`] holds the policy author's tools (`switchyard policy new`, `check`,
//! `test`, `replay`), which load components with the same engine and sandbox as the proxy, and
//! [`registry`] pushes components to OCI registries and pulls them by digest
//! (`switchyard policy push`, `pull`).
//!
//! Above them all, [`proxy`] is the process: it binds the listeners, loads the policies, serves,
//! reloads and drains ([`proxy::serve`]). The `switchyard` binary (`src/main.rs`) is only its
//! command line.

// These docs are for the crate's maintainers, built with `--document-private-items` (as CI does),
// where a link from a public item to a private one resolves.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod authoring;
pub mod clock;
pub mod config;
pub mod control;
pub mod fleet;
pub mod label;
pub mod policy;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod telemetry;
pub mod upstream;
