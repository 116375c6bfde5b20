//! A team's catalog as its policy is shown it, and the copies of it that decisions borrow.
//!
//! A decision is given the team's models with each one's live health as it is at that moment.
//! Building that copy anew cloned every id, provider and tag of every model, two dozen
//! allocations and as many frees a request for a catalog of four. A [`Catalog`] keeps the copies
//! decisions have given back ([`Lent`] returns its copy when dropped), so a decision after the
//! first takes a copy whose strings are already there and rewrites only the health. At most
//! [`MAX_KEPT`] copies are kept, about as many as decisions that run at once; a copy is made
//! from the catalog each time none is free. It touches the catalog's models and nothing else.

use std::ops::Deref;
use std::sync::{Mutex, PoisonError};

use crate::policy::Model;
use crate::policy::wit::ModelHealth;

/// Most copies one catalog keeps for the next decisions.
pub const MAX_KEPT: usize = 64;

/// The models a team may use for one kind of request, as a policy sees them before their live
/// fields are filled in.
pub struct Catalog {
    models: Vec<Model>,
    kept: Mutex<Vec<Vec<Model>>>,
}

impl Catalog {
    pub fn new(models: Vec<Model>) -> Self {
        Self {
            models,
            kept: Mutex::default(),
        }
    }

    /// A copy of the models for one decision, each with the health `live` gives for its id (or
    /// the catalog's own, where it gives none).
    pub fn live(&self, live: impl Fn(&str) -> Option<ModelHealth>) -> Lent<'_> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut models = kept.unwrap_or_else(|| self.models.clone());
        for (copy, model) in models.iter_mut().zip(&self.models) {
            copy.health = live(&model.id).unwrap_or(model.health);
        }
        Lent {
            catalog: self,
            models,
        }
    }
}

impl Deref for Catalog {
    type Target = [Model];

    fn deref(&self) -> &[Model] {
        &self.models
    }
}

/// A copy of a catalog with live fields, lent to one decision; given back when dropped.
pub struct Lent<'a> {
    catalog: &'a Catalog,
    models: Vec<Model>,
}

impl Deref for Lent<'_> {
    type Target = [Model];

    fn deref(&self) -> &[Model] {
        &self.models
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut kept = self
            .catalog
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < MAX_KEPT {
            kept.push(std::mem::take(&mut self.models));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::input::unmeasured;

    fn model(id: &str) -> Model {
        Model {
            id: id.to_string(),
            provider: "p".to_string(),
            input_cost_per_mtok: 1.0,
            output_cost_per_mtok: 2.0,
            context_window: 1000,
            tags: vec!["cheap".to_string()],
            health: unmeasured(),
        }
    }

    fn measured(latency_ms: f32) -> ModelHealth {
        ModelHealth {
            latency_ms,
            ..unmeasured()
        }
    }

    #[test]
    fn each_lent_copy_has_the_health_of_its_moment_and_comes_back_for_the_next() {
        let catalog = Catalog::new(vec![model("a"), model("b")]);
        let first = catalog.live(|id| (id == "a").then(|| measured(5.0)));
        assert_eq!(first[0].health.latency_ms, 5.0);
        assert_eq!(first[1].health.latency_ms, 0.0);
        let held = first.as_ptr();
        drop(first);
        // The copy given back serves the next decision, with that moment's health only: what the
        // last decision was given does not stay.
        let second = catalog.live(|id| (id == "b").then(|| measured(7.0)));
        assert_eq!(second.as_ptr(), held);
        assert_eq!(second[0].health.latency_ms, 0.0);
        assert_eq!(second[1].health.latency_ms, 7.0);
        assert_eq!(second[0].id, "a");
        assert_eq!(second[1].tags, ["cheap"]);
        // Two decisions at once get copies of their own.
        let third = catalog.live(|_| None);
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(catalog.len(), 2);
    }

    #[test]
    fn no_more_copies_are_kept_than_the_cap() {
        let catalog = Catalog::new(vec![model("a")]);
        let lent: Vec<_> = (0..MAX_KEPT + 5).map(|_| catalog.live(|_| None)).collect();
        drop(lent);
        let kept = catalog.kept.lock().unwrap().len();
        assert_eq!(kept, MAX_KEPT);
    }
}
