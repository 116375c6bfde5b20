//! Host-side bindings generated from `wit/policy.wit`.
//!
//! Exports are called asynchronously (`call_async`), so a guest writing to WASI stderr while it
//! runs on a tokio worker never starts a nested runtime (see the project's wasmtime notes).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    exports: { default: async },
});

pub use self::switchyard::policy::host::{Budget, LogLevel, Operation};
pub use self::switchyard::policy::types::{ClientApi, MessageSummary, ModelHealth, Pair, Role};
