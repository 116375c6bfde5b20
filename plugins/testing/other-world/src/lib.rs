//! # other-world-policy: a component of another world, which the host must refuse
//!
//! A well-formed WebAssembly component that has nothing to do with Switchyard: it targets the
//! world `acme:greeter/greeter@1.0.0` and exports only `greet`. It neither exports `decide` nor
//! imports `switchyard:policy/host`, so loading it as a policy must fail with a clear error. The
//! end-to-end tests of policy validation use it.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package acme:greeter@1.0.0;

            world greeter {
                export greet: func(name: string) -> string;
            }
        ",
        world: "greeter",
    });
}

struct Greeter;

impl bindings::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

bindings::export!(Greeter with_types_in bindings);
