//! Whole-word cue matching: which of a policy's cue phrases ("prove", "step by step", "```") a
//! prompt contains. One pass over the text finds every cue at once: a shift table (Wu and
//! Manber's) moves along the text by up to the shortest cue's length less one, a filter of the
//! cues' first two bytes rejects most of the positions where it stops, and a first-byte table
//! points the rest at the cues that could start there. So a policy with a dozen cues reads its
//! prompt once, about a third of its bytes, instead of a dozen times, and the case-insensitive
//! form needs no lower-cased copy of the prompt. Pure functions over borrowed text; they touch
//! nothing else.

/// Cues are matched 64 at a time: one bit of a `u64` per cue.
const CHUNK: usize = 64;

/// The first of `cues` (in the order given) found in `text`, matched as whole words: a cue that
/// starts (ends) with a letter or digit must not have one just before (after) it, so `prove` does
/// not match `improve`, while a cue such as "```" matches anywhere. An empty cue never matches.
/// Case matters; see [`find_cue_ignoring_case`].
pub fn find_cue<'c>(text: &str, cues: &[&'c str]) -> Option<&'c str> {
    first_found(text, cues, false)
}

/// [`find_cue`], with ASCII letters matching regardless of case (`Prove` matches the cue
/// `prove`), without lower-casing a copy of `text`. Non-ASCII letters must match exactly.
pub fn find_cue_ignoring_case<'c>(text: &str, cues: &[&'c str]) -> Option<&'c str> {
    first_found(text, cues, true)
}

fn first_found<'c>(text: &str, cues: &[&'c str], ignore_case: bool) -> Option<&'c str> {
    let in_chunk = if ignore_case {
        first_in_chunk::<true>
    } else {
        first_in_chunk::<false>
    };
    cues.chunks(CHUNK)
        .find_map(|chunk| in_chunk(text, chunk).map(|i| chunk[i]))
}

/// A byte as it is compared: ASCII letters lower-cased when `FOLD`.
fn fold<const FOLD: bool>(b: u8) -> u8 {
    if FOLD { b.to_ascii_lowercase() } else { b }
}

/// Which positions may start one of `chunk`'s cues, by the block of the bytes at and after them
/// (after the last byte, 0). A one-byte cue sets its byte's block with every byte after it.
fn pair_filter(chunk: &[&str]) -> [u64; 16] {
    let mut filter = [0u64; 16];
    let mut set = |block: usize| filter[block / 64] |= 1 << (block % 64);
    for cue in chunk {
        match *cue.as_bytes() {
            [] => {}
            [first] => (0..32).for_each(|second| set(block(first, second))),
            [first, second, ..] => set(block(first, second)),
        }
    }
    filter
}

/// The index of the first cue of `chunk` (at most 64 cues) found in `text`. When every cue has
/// three bytes or more, a window as long as the shortest cue moves along the text by the shift
/// table, looking at a position only where a cue may start; otherwise every position is looked at.
fn first_in_chunk<const FOLD: bool>(text: &str, chunk: &[&str]) -> Option<usize> {
    let shortest = chunk.iter().map(|cue| cue.len()).filter(|&n| n > 0).min()?;
    let mut search = Search::<FOLD>::new(text, chunk);
    if shortest < 3 {
        (0..text.len()).any(|at| search.look_at(at));
        return search.best;
    }
    let shifts = shifts(chunk, shortest);
    let bytes = text.as_bytes();
    let mut at = 0;
    while at + shortest <= bytes.len() {
        let end = at + shortest;
        match shifts[block(bytes[end - 2], bytes[end - 1])] {
            0 if search.look_at(at) => break,
            0 => at += 1,
            shift => at += usize::from(shift),
        }
    }
    search.best
}

/// The block of two bytes the shift table and the pair filter are indexed by: the low five bits
/// of each, so that an ASCII letter and its capital share a block (case folds for free) while two
/// pairs of lower-case letters never do.
fn block(first: u8, second: u8) -> usize {
    usize::from(first & 31) << 5 | usize::from(second & 31)
}

/// How far a window of the `shortest` cue's length may move on, by the block at its end, without
/// passing a position where a cue of `chunk` may start (Wu and Manber's shift table): how far
/// from the end of a cue's first `shortest` bytes the block last occurs there, or `shortest - 1`
/// where it does not. At 0 a cue may start at the window's first byte.
fn shifts(chunk: &[&str], shortest: usize) -> [u8; 1024] {
    let capped = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    let mut shifts = [capped(shortest - 1); 1024];
    for cue in chunk.iter().filter(|cue| !cue.is_empty()) {
        for (j, pair) in cue.as_bytes()[..shortest].windows(2).enumerate() {
            let shift = &mut shifts[block(pair[0], pair[1])];
            *shift = (*shift).min(capped(shortest - 2 - j));
        }
    }
    shifts
}

/// One chunk's search of one text: which positions may start one of its cues, and the first
/// cue (in the chunk's order) found so far.
struct Search<'a, const FOLD: bool> {
    text: &'a str,
    chunk: &'a [&'a str],
    filter: [u64; 16],
    starting_with: [u64; 256],
    best: Option<usize>,
    /// The cues still worth finding: those before the best so far.
    wanted: u64,
}

impl<'a, const FOLD: bool> Search<'a, FOLD> {
    fn new(text: &'a str, chunk: &'a [&'a str]) -> Self {
        let mut starting_with = [0u64; 256];
        for (i, cue) in chunk.iter().enumerate() {
            if let Some(&first) = cue.as_bytes().first() {
                starting_with[usize::from(fold::<FOLD>(first))] |= 1 << i;
            }
        }
        Self {
            text,
            chunk,
            filter: pair_filter(chunk),
            starting_with,
            best: None,
            wanted: u64::MAX,
        }
    }

    /// Looks for the wanted cues at byte `at`; true once no cue is left to look for.
    fn look_at(&mut self, at: usize) -> bool {
        let bytes = self.text.as_bytes();
        let pair = block(bytes[at], bytes.get(at + 1).copied().unwrap_or(0));
        if self.filter[pair / 64] & 1 << (pair % 64) == 0 {
            return false;
        }
        let mut candidates = self.starting_with[usize::from(fold::<FOLD>(bytes[at]))] & self.wanted;
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            if matches_at(self.text, at, self.chunk[i], FOLD) {
                self.best = Some(i);
                self.wanted = (1 << i) - 1;
                break;
            }
            candidates &= candidates - 1;
        }
        self.wanted == 0
    }
}

/// Whether `cue` occurs in `text` at byte offset `at` as a whole word. A cue is valid UTF-8 and
/// so is `text`, so a byte-wise match starts and ends on character boundaries.
fn matches_at(text: &str, at: usize, cue: &str, ignore_case: bool) -> bool {
    let Some(candidate) = text.as_bytes().get(at..at + cue.len()) else {
        return false;
    };
    let same = if ignore_case {
        candidate.eq_ignore_ascii_case(cue.as_bytes())
    } else {
        candidate == cue.as_bytes()
    };
    if !same {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let starts_word = cue.chars().next().is_some_and(char::is_alphanumeric);
    let ends_word = cue.chars().next_back().is_some_and(char::is_alphanumeric);
    !(starts_word && word(text[..at].chars().next_back())
        || ends_word && word(text[at + cue.len()..].chars().next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious implementation: every cue in order, every occurrence, case folded by copying.
    fn reference<'c>(text: &str, cues: &[&'c str], ignore_case: bool) -> Option<&'c str> {
        let text = if ignore_case {
            text.to_ascii_lowercase()
        } else {
            text.to_string()
        };
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        cues.iter().copied().find(|&cue| {
            let needle = if ignore_case {
                cue.to_ascii_lowercase()
            } else {
                cue.to_string()
            };
            let (Some(first), Some(last)) = (needle.chars().next(), needle.chars().next_back())
            else {
                return false;
            };
            (0..text.len())
                .filter(|&at| text.is_char_boundary(at) && text[at..].starts_with(&needle))
                .any(|at| {
                    let before = text[..at].chars().next_back();
                    let after = text[at + needle.len()..].chars().next();
                    !(first.is_alphanumeric() && word(before)
                        || last.is_alphanumeric() && word(after))
                })
        })
    }

    #[test]
    fn cues_match_whole_words_unless_they_are_punctuation() {
        let cues = ["prove", "step by step", "```", "tl;dr", "#include"];
        assert_eq!(find_cue("please prove it", &cues), Some("prove"));
        assert_eq!(find_cue("improve this; approve that", &cues), None);
        assert_eq!(find_cue("proven", &cues), None);
        assert_eq!(find_cue("go step by step.", &cues), Some("step by step"));
        assert_eq!(find_cue("see:```rust\nfn x()```", &cues), Some("```"));
        assert_eq!(find_cue("tl;dr: short", &cues), Some("tl;dr"));
        assert_eq!(find_cue("x#include <a>", &cues), Some("#include"));
        assert_eq!(find_cue("#includes", &cues), None);
        assert_eq!(find_cue("anything", &[""]), None);
        assert_eq!(find_cue("", &cues), None);
    }

    #[test]
    fn the_first_cue_in_cue_order_wins_wherever_it_occurs() {
        let cues = ["prove", "step by step"];
        assert_eq!(find_cue("step by step, then prove", &cues), Some("prove"));
        assert_eq!(find_cue("step by step", &cues), Some("step by step"));
    }

    #[test]
    fn a_rejected_occurrence_does_not_hide_a_later_or_overlapping_one() {
        assert_eq!(find_cue("improve, then prove", &["prove"]), Some("prove"));
        assert_eq!(find_cue("aaa", &["aa"]), None, "no whole-word occurrence");
        assert_eq!(find_cue("=== x", &["=="]), Some("=="));
        assert_eq!(find_cue("a ab", &["ab"]), Some("ab"));
    }

    #[test]
    fn case_is_ignored_for_ascii_letters_only_when_asked() {
        let cues = ["prove", "step by step"];
        assert_eq!(find_cue("Please PROVE it", &cues), None);
        assert_eq!(
            find_cue_ignoring_case("Please PROVE it", &cues),
            Some("prove")
        );
        assert_eq!(
            find_cue_ignoring_case("Step By Step", &cues),
            Some("step by step")
        );
        assert_eq!(find_cue_ignoring_case("IMPROVE", &cues), None);
        assert_eq!(find_cue_ignoring_case("ÉTAPE", &["étape"]), None);
        assert_eq!(find_cue_ignoring_case("étape", &["étape"]), Some("étape"));
    }

    #[test]
    fn letters_beyond_ascii_count_as_word_characters() {
        assert_eq!(find_cue("éprove", &["prove"]), None);
        assert_eq!(find_cue("proveé", &["prove"]), None);
        assert_eq!(find_cue("« prove »", &["prove"]), Some("prove"));
        assert_eq!(find_cue("日本語の証明", &["証明"]), None);
        assert_eq!(find_cue("証明 です", &["証明"]), Some("証明"));
    }

    #[test]
    fn more_than_sixty_four_cues_are_all_searched() {
        let owned: Vec<String> = (0..150).map(|i| format!("cue{i}")).collect();
        let cues: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_eq!(find_cue("a cue149 and cue70", &cues), Some("cue70"));
        assert_eq!(find_cue("cue63 cue64", &cues), Some("cue63"));
        assert_eq!(find_cue("cue1490", &cues), None);
    }

    /// Generated texts over `alphabet`, each searched for a tail of `cues`, agree with
    /// [`reference`] with and without case.
    fn agrees_on_generated_texts(alphabet: &[&str], cues: &[&str]) {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let len = next() % 16;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let start = (next() % cues.len() as u64) as usize;
            let picked = &cues[start..];
            for ignore_case in [false, true] {
                assert_eq!(
                    first_found(&text, picked, ignore_case),
                    reference(&text, picked, ignore_case),
                    "text {text:?}, cues {picked:?}, ignore_case {ignore_case}"
                );
            }
        }
    }

    #[test]
    fn agrees_with_the_reference_on_generated_inputs() {
        agrees_on_generated_texts(
            &["a", "b", "A", " ", "-", "é", "è", "1", "`", "ab", "ba"],
            &["ab", "a", "b a", "`", "``", "é", "1a", "-b", "aé", "BA", ""],
        );
    }

    #[test]
    fn skipping_along_the_text_agrees_with_the_reference() {
        agrees_on_generated_texts(
            &["a", "b", "A", "B", " ", "-", "é", "ab", "ba", "bab", "a!"],
            &[
                "b a b", "aba", "BAB", "ab-", "éa", "abab", "a-b a", "", "!ba", "bAbA",
            ],
        );
    }
}
