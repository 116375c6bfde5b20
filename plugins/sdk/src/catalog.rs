//! Choosing among catalog models: cost ranking, "the cheapest healthy model with tag X that can
//! serve this request", the rejection when none can, and power of two choices for balancing.

use crate::{Decision, Model, Request, reject};

/// The models a policy may route to, with the live state the host last saw.
#[derive(Debug, Clone)]
pub struct Catalog(pub Vec<Model>);

impl Catalog {
    /// All models, in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.0.iter()
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Option<&Model> {
        self.0.iter().find(|m| m.id == id)
    }

    /// Healthy models that satisfy `keep`, cheapest first (by blended price), ties by catalog order.
    pub fn ranked_by_cost(&self, keep: impl Fn(&Model) -> bool) -> Vec<&Model> {
        let mut models: Vec<&Model> = self
            .0
            .iter()
            .filter(|m| m.health.healthy && keep(m))
            .collect();
        models.sort_by(|a, b| a.blended_cost().total_cmp(&b.blended_cost()));
        models
    }

    /// The cheapest healthy model that satisfies `keep`.
    pub fn cheapest(&self, keep: impl Fn(&Model) -> bool) -> Option<&Model> {
        self.ranked_by_cost(keep).into_iter().next()
    }

    /// The cheapest healthy model tagged `tag`.
    pub fn cheapest_with_tag(&self, tag: &str) -> Option<&Model> {
        self.cheapest(|m| m.has_tag(tag))
    }

    /// Healthy models tagged `tag` that can serve `req` ([`ModelExt::can_serve`]), cheapest
    /// first: a route with same-tier fallbacks.
    pub fn ranked_fitting(&self, req: &Request, tag: &str) -> Vec<&Model> {
        self.ranked_by_cost(|m| m.has_tag(tag) && m.can_serve(req))
    }

    /// The cheapest healthy model tagged `tag` that can serve `req`.
    pub fn cheapest_fitting(&self, req: &Request, tag: &str) -> Option<&Model> {
        self.ranked_fitting(req, tag).into_iter().next()
    }

    /// The rejection for a request no healthy model can serve: 503 when only health stands in
    /// the way, else 400 saying what no model offers (images, or a large enough context window).
    pub fn unservable(&self, req: &Request) -> Decision {
        if self.iter().any(|m| m.can_serve(req)) {
            return reject(
                503,
                "every model that could serve this request is unhealthy; try again later",
            );
        }
        if req.has_images && !self.iter().any(|m| m.has_tag("vision")) {
            return reject(400, "no model available to you accepts images");
        }
        reject(
            400,
            format!(
                "the prompt (~{} tokens) is larger than every available model's context window",
                req.estimated_input_tokens
            ),
        )
    }
}

/// Helpers on a catalog [`Model`].
pub trait ModelExt {
    /// The model carries this tag.
    fn has_tag(&self, tag: &str) -> bool;
    /// Price of a typical request, weighting output tokens three times input tokens.
    fn blended_cost(&self) -> f64;
    /// The request's estimated prompt plus its output cap fits in the context window.
    fn fits(&self, req: &Request) -> bool;
    /// The model [`fits`](ModelExt::fits) the request and, when it carries images, is tagged
    /// `vision`. Health is not considered.
    fn can_serve(&self, req: &Request) -> bool;
}

impl ModelExt for Model {
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn blended_cost(&self) -> f64 {
        self.input_cost_per_mtok + 3.0 * self.output_cost_per_mtok
    }

    fn fits(&self, req: &Request) -> bool {
        let needed =
            u64::from(req.estimated_input_tokens) + u64::from(req.max_output_tokens.unwrap_or(0));
        needed <= u64::from(self.context_window)
    }

    fn can_serve(&self, req: &Request) -> bool {
        self.fits(req) && (!req.has_images || self.has_tag("vision"))
    }
}

/// What [`two_choices`] found: indices into the candidates and their scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoChoices {
    /// The sampled candidate with the lower score.
    pub winner: (usize, f64),
    /// The other sampled candidate; `None` when there was only one candidate.
    pub other: Option<(usize, f64)>,
}

/// Power of two choices: sample two distinct candidates using `random` and keep the one with
/// the lower `score` (on a tie, the earlier one). With two candidates both are always compared,
/// so the outcome does not depend on `random`. `None` without candidates.
pub fn two_choices<T>(
    candidates: &[T],
    random: u64,
    score: impl Fn(&T) -> f64,
) -> Option<TwoChoices> {
    let n = candidates.len() as u64;
    let scored = |i: u64| (i as usize, score(&candidates[i as usize]));
    match n {
        0 => None,
        1 => Some(TwoChoices {
            winner: scored(0),
            other: None,
        }),
        _ => {
            let first = random % n;
            let second = (first + 1 + (random / n) % (n - 1)) % n;
            let (a, b) = (scored(first.min(second)), scored(first.max(second)));
            let (winner, other) = if b.1 < a.1 { (b, a) } else { (a, b) };
            Some(TwoChoices {
                winner,
                other: Some(other),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, model, rejection_of};

    fn catalog() -> Catalog {
        Catalog(vec![
            model("dear")
                .prices(10.0, 30.0)
                .window(1000)
                .tags(["reasoning"])
                .build(),
            model("down")
                .prices(0.1, 0.1)
                .window(1000)
                .tags(["cheap", "vision"])
                .healthy(false)
                .build(),
            model("mid")
                .prices(1.0, 2.0)
                .window(1000)
                .tags(["cheap"])
                .build(),
            model("eyes")
                .prices(2.0, 2.0)
                .window(100_000)
                .tags(["cheap", "vision"])
                .build(),
        ])
    }

    fn ids(models: Vec<&Model>) -> Vec<&str> {
        models.into_iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn cheapest_skips_unhealthy_and_filtered_models() {
        let catalog = catalog();
        assert_eq!(catalog.cheapest(|_| true).unwrap().id, "mid");
        assert_eq!(catalog.cheapest_with_tag("reasoning").unwrap().id, "dear");
        assert_eq!(catalog.cheapest_with_tag("vision").unwrap().id, "eyes");
        assert!(catalog.cheapest_with_tag("tools").is_none());
        assert_eq!(
            ids(catalog.ranked_by_cost(|_| true)),
            ["mid", "eyes", "dear"]
        );
    }

    #[test]
    fn fitting_counts_prompt_output_cap_and_images() {
        let catalog = catalog();
        let short = testing::request().user("hi").build();
        assert_eq!(
            ids(catalog.ranked_fitting(&short, "cheap")),
            ["mid", "eyes"]
        );

        let capped = testing::request().user("hi").max_output_tokens(996).build();
        assert_eq!(short.estimated_input_tokens, 5);
        assert!(!catalog.get("mid").unwrap().fits(&capped), "5 + 996 > 1000");
        let capped = testing::request().user("hi").max_output_tokens(995).build();
        assert!(catalog.get("mid").unwrap().fits(&capped), "5 + 995 = 1000");

        let long = testing::request().user(&"x".repeat(8000)).build();
        assert_eq!(
            catalog.cheapest_fitting(&long, "cheap").unwrap().id,
            "eyes",
            "only the large window fits"
        );
        let image = testing::request().user("what is this?").image().build();
        assert_eq!(ids(catalog.ranked_fitting(&image, "cheap")), ["eyes"]);
        assert!(catalog.cheapest_fitting(&image, "reasoning").is_none());
    }

    #[test]
    fn unservable_says_what_is_missing() {
        let mut catalog = catalog();
        let huge = testing::request().user(&"x".repeat(1_000_000)).build();
        let decision = catalog.unservable(&huge);
        let (status, message) = rejection_of(&decision);
        assert_eq!(status, 400);
        assert!(
            message.contains("(~250004 tokens) is larger than every"),
            "{message}"
        );

        let image = testing::request().user("look").image().build();
        catalog.0.retain(|m| !m.has_tag("vision"));
        let decision = catalog.unservable(&image);
        assert_eq!(
            rejection_of(&decision),
            (400, "no model available to you accepts images")
        );

        let short = testing::request().user("hi").build();
        catalog.0.iter_mut().for_each(|m| m.health.healthy = false);
        assert_eq!(rejection_of(&catalog.unservable(&short)).0, 503);
    }

    #[test]
    fn two_choices_samples_two_distinct_and_keeps_the_lower_score() {
        let scores = [5.0, 1.0, 3.0, 1.0];
        let score = |s: &f64| *s;
        assert_eq!(two_choices(&[] as &[f64], 7, score), None);
        assert_eq!(
            two_choices(&[9.0], 7, score),
            Some(TwoChoices {
                winner: (0, 9.0),
                other: None
            })
        );
        for random in 0..64 {
            let pick = two_choices(&scores, random, score).unwrap();
            let (w, o) = (pick.winner, pick.other.unwrap());
            assert_ne!(w.0, o.0, "two distinct candidates");
            assert!(w.1 <= o.1);
            assert_eq!(scores[w.0], w.1);
        }
        let pairs: std::collections::BTreeSet<(usize, usize)> = (0..64)
            .map(|r| {
                let pick = two_choices(&scores, r, score).unwrap();
                let o = pick.other.unwrap().0;
                (pick.winner.0.min(o), pick.winner.0.max(o))
            })
            .collect();
        assert_eq!(pairs.len(), 6, "every pair of four is sampled");
        let tie = two_choices(&[2.0, 2.0], 1, score).unwrap();
        assert_eq!(tie.winner, (0, 2.0), "ties go to the earlier candidate");
        let pair = two_choices(&[4.0, 2.0], 12345, score).unwrap();
        assert_eq!((pair.winner, pair.other), ((1, 2.0), Some((0, 4.0))));
    }
}
