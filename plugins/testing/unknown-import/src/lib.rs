//! # unknown-import-policy: a policy that imports what no host offers, which the host must refuse
//!
//! It exports the real `switchyard:policy` world, and also imports a made-up interface,
//! `acme:vault/secrets@1.0.0`, that it calls in `decide` (so the import is kept). The host
//! provides no such interface and must refuse to load the component rather than fail at the
//! first request. The end-to-end tests of policy validation use it.

use switchyard_sdk::{Catalog, Decision, Policy, Request, route};

/// Bindings for the interface the host does not provide.
mod vault {
    wit_bindgen::generate!({
        inline: "
            package acme:vault@1.0.0;

            interface secrets {
                get: func(name: string) -> option<string>;
            }

            world vault-client {
                import secrets;
            }
        ",
        world: "vault-client",
    });
}

use vault::acme::vault::secrets;

struct UnknownImport;

impl Policy for UnknownImport {
    fn decide(_req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let reason = match secrets::get("upstream-api-key") {
            Some(_) => "got a secret",
            None => "no secret",
        };
        let first = catalog.iter().next().ok_or("empty catalog")?;
        Ok(route([first.id.as_str()], reason))
    }
}

switchyard_sdk::export_policy!(UnknownImport);
