//! Line-based three-way merge of text files (in the spirit of `diff3 -m` and
//! `git merge-file`).
//!
//! # Semantics
//!
//! * **Lines.** Each input is split into lines that *keep* their terminator:
//!   a line is everything up to and including a `\n` (so a CRLF line keeps its
//!   `\r\n`), and a final line without a terminator is a line of its own. Lines
//!   are compared byte for byte, so `"x"` and `"x\n"` are different lines and a
//!   missing final newline (or a CRLF ending) is reproduced exactly. Joining
//!   the lines gives back the input.
//! * **Hunks.** The changes base→ours and base→theirs are computed with
//!   `similar`'s Myers diff over the lines (a minimal line diff) and grouped
//!   into *hunks*: maximal runs of changed lines, each replacing a range of
//!   base lines (empty for a pure insertion) by a run of that side's lines.
//!   Two hunks of the same side are always separated by at least one
//!   unchanged base line.
//! * **Walk.** The hunks of both sides are walked together in base order. Two
//!   hunks of opposite sides *collide* when their base ranges share a line, or
//!   when one of them is an insertion (an empty range) located inside or at
//!   either edge of the other's range — in particular two insertions at the
//!   same point collide, and so do an insertion right before/after a line and
//!   a change of that line. Two non-empty ranges that merely abut (ours
//!   changes line 3, theirs line 4) do **not** collide. Colliding hunks are
//!   gathered transitively into one *region* spanning the union of their base
//!   ranges.
//!   * A region with hunks from one side only takes that side's text.
//!   * A region with hunks from both sides: each side's version of the whole
//!     span is formed (its replacements plus the base lines it left alone
//!     inside the span). If both versions are identical they are applied once;
//!     otherwise the region is a [`ConflictRegion`].
//!   * Base lines outside every region are copied unchanged.
//! * **Result.** Without conflicts the merged text is [`MergeOutcome::Clean`];
//!   otherwise [`MergeOutcome::Conflicts`] lists *every* conflicting region, in
//!   base order, with non-overlapping base ranges.
//! * **Shortcuts.** Identical `ours` and `theirs` give `Clean(ours)`;
//!   `ours == base` gives `Clean(theirs)`; `theirs == base` gives
//!   `Clean(ours)` (whatever the inputs, no diff is computed).
//! * **Symmetry.** Swapping `ours` and `theirs` never changes whether the merge
//!   is clean, nor the clean text; conflict regions swap their two sides.
//! * **Robustness.** [`merge3`] never panics. Each diff is bounded by a time
//!   limit ([`DIFF_TIME_LIMIT`]); on pathological inputs that exceed it the
//!   diff is still a valid description of the change, only coarser, which can
//!   turn a clean merge into a conflict but never produce a wrong clean text.

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use similar::algorithms::{myers, Capture};
use similar::DiffTag;

/// Largest size (exclusive) of a text [`is_mergeable_text`] accepts: 8 MiB.
pub const MAX_MERGEABLE_TEXT: usize = 8 << 20;

/// Upper bound on the time spent computing one line diff (see the module
/// documentation, "Robustness").
pub const DIFF_TIME_LIMIT: Duration = Duration::from_secs(5);

/// A region both sides changed differently.
///
/// All line vectors hold whole lines *including* their terminators, so
/// `ours.concat()` is exactly the text ours has in place of the base lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRegion {
    /// The 0-based, half-open range of base lines the region replaces; empty
    /// when both sides inserted different lines at the same point
    /// (`start` is then the index of the base line the insertions precede).
    pub base_lines: Range<usize>,
    /// Our text for the region, as lines.
    pub ours: Vec<String>,
    /// Their text for the region, as lines.
    pub theirs: Vec<String>,
    /// The base text of the region (the lines `base_lines` names).
    pub base: Vec<String>,
}

/// The result of [`merge3`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Every change combined: the merged text.
    Clean(String),
    /// Every region both sides changed differently, in base order (never empty).
    Conflicts(Vec<ConflictRegion>),
}

impl MergeOutcome {
    /// True for [`MergeOutcome::Clean`].
    pub fn is_clean(&self) -> bool {
        matches!(self, MergeOutcome::Clean(_))
    }
}

/// Three-way merges `ours` and `theirs`, both derived from `base`, line by
/// line. See the module documentation for the exact semantics.
pub fn merge3(base: &str, ours: &str, theirs: &str) -> MergeOutcome {
    if ours == theirs || theirs == base {
        return MergeOutcome::Clean(ours.to_owned());
    }
    if ours == base {
        return MergeOutcome::Clean(theirs.to_owned());
    }
    merge_lines(&split_lines(base), &split_lines(ours), &split_lines(theirs))
}

/// True when bytes look like text we can merge line by line: valid UTF-8, no
/// NUL byte, and shorter than [`MAX_MERGEABLE_TEXT`] (8 MiB).
pub fn is_mergeable_text(bytes: &[u8]) -> bool {
    bytes.len() < MAX_MERGEABLE_TEXT && !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// Splits into lines that keep their `\n` terminator; the last line may lack one.
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// One change of a side: base lines `base` are replaced by that side's lines `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    base: Range<usize>,
    new: Range<usize>,
}

impl Hunk {
    /// Sort key for walking hunks in base order; an insertion at `p` comes
    /// before a change starting at `p`.
    fn key(&self) -> (usize, usize) {
        (self.base.start, self.base.end)
    }
}

/// The hunks turning `base` into `new`, in base order.
///
/// The common prefix and suffix are unchanged and skipped. In between, lines
/// are interned to integers, and lines occurring in only one of the two texts
/// are left out before running Myers: they can never be part of a common
/// subsequence, so the diff stays minimal, and wholesale rewrites stay fast.
/// The matched line pairs Myers finds are mapped back to line numbers, and
/// every gap between consecutive matches is a hunk.
///
/// The ops are taken straight from Myers, without `similar`'s `Compact` pass
/// (in `similar` 2.x it can leave stale `old_index`/`new_index` values,
/// mitsuhiko/similar#78), positions are recomputed from the op lengths, and
/// the matches are checked (really equal lines, strictly increasing). Should
/// the check ever fail, the whole text counts as one hunk: coarse, never wrong.
fn hunks(base: &[&str], new: &[&str]) -> Vec<Hunk> {
    let whole = || {
        if base == new {
            Vec::new()
        } else {
            vec![Hunk {
                base: 0..base.len(),
                new: 0..new.len(),
            }]
        }
    };
    // The common prefix and suffix are unchanged; diff only what lies between.
    let prefix = base.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = base[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (base_mid, new_mid) = (
        &base[prefix..base.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let matches = match matched_lines(base_mid, new_mid) {
        Some(m) => m,
        None => return whole(),
    };
    let mut out = Vec::new();
    let (mut b, mut n) = (0, 0);
    let end = (base_mid.len(), new_mid.len());
    for &(i, j) in matches.iter().chain(std::iter::once(&end)) {
        if i > b || j > n {
            out.push(Hunk {
                base: prefix + b..prefix + i,
                new: prefix + n..prefix + j,
            });
        }
        (b, n) = (i + 1, j + 1);
    }
    out
}

/// The pairs `(base index, new index)` of lines a minimal line diff keeps,
/// strictly increasing in both; `None` if the diff came out inconsistent.
fn matched_lines<'a>(base: &[&'a str], new: &[&'a str]) -> Option<Vec<(usize, usize)>> {
    // Intern: an id per distinct line, and whether it occurs in base / new.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut occurs: Vec<[bool; 2]> = Vec::new();
    let mut intern = |lines: &[&'a str], side: usize| -> Vec<usize> {
        lines
            .iter()
            .map(|&line| {
                let next = ids.len();
                let id = *ids.entry(line).or_insert(next);
                if id == occurs.len() {
                    occurs.push([false; 2]);
                }
                occurs[id][side] = true;
                id
            })
            .collect()
    };
    let base_ids = intern(base, 0);
    let new_ids = intern(new, 1);
    // Keep only lines occurring on both sides, remembering where they were.
    let shared = |id: &usize| occurs.get(*id).is_some_and(|o| o[0] && o[1]);
    let (base_pos, base_seq): (Vec<usize>, Vec<usize>) = base_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| shared(id))
        .map(|(i, &id)| (i, id))
        .unzip();
    let (new_pos, new_seq): (Vec<usize>, Vec<usize>) = new_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| shared(id))
        .map(|(i, &id)| (i, id))
        .unzip();

    let deadline = Instant::now().checked_add(DIFF_TIME_LIMIT);
    let mut capture = Capture::new();
    match myers::diff_deadline(
        &mut capture,
        &base_seq[..],
        0..base_seq.len(),
        &new_seq[..],
        0..new_seq.len(),
        deadline,
    ) {
        Ok(()) => {}
        Err(never) => match never {},
    }

    let mut matches = Vec::new();
    let (mut o, mut n) = (0usize, 0usize);
    for op in capture.into_ops() {
        let (old_len, new_len) = (op.old_range().len(), op.new_range().len());
        if op.tag() == DiffTag::Equal {
            if old_len != new_len {
                return None;
            }
            for k in 0..old_len {
                let i = *base_pos.get(o + k)?;
                let j = *new_pos.get(n + k)?;
                if base.get(i)? != new.get(j)? {
                    return None;
                }
                if let Some(&(pi, pj)) = matches.last() {
                    if i <= pi || j <= pj {
                        return None;
                    }
                }
                matches.push((i, j));
            }
        }
        o = o.saturating_add(old_len);
        n = n.saturating_add(new_len);
    }
    (o == base_seq.len() && n == new_seq.len()).then_some(matches)
}

/// Whether two base ranges of opposite sides collide (see the module docs):
/// non-empty ranges must share a line; an empty range (an insertion point)
/// collides with a range it lies in or at an edge of.
fn collide(a: &Range<usize>, b: &Range<usize>) -> bool {
    if a.is_empty() || b.is_empty() {
        a.start <= b.end && b.start <= a.end
    } else {
        a.start < b.end && b.start < a.end
    }
}

/// Which side's hunk comes next in base order, if any.
fn next_side(ours: Option<&Hunk>, theirs: Option<&Hunk>) -> Option<Side> {
    match (ours, theirs) {
        (None, None) => None,
        (Some(_), None) => Some(Side::Ours),
        (None, Some(_)) => Some(Side::Theirs),
        (Some(o), Some(t)) => Some(if o.key() <= t.key() {
            Side::Ours
        } else {
            Side::Theirs
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
}

/// A side's version of the base lines `span`, given its hunks inside the span.
fn side_text<'a>(
    base: &[&'a str],
    side: &[&'a str],
    span: &Range<usize>,
    hunks: &[Hunk],
) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = span.start;
    for h in hunks {
        out.extend_from_slice(slice(base, pos..h.base.start));
        out.extend_from_slice(slice(side, h.new.clone()));
        pos = pos.max(h.base.end);
    }
    out.extend_from_slice(slice(base, pos..span.end));
    out
}

/// `lines[range]`, or nothing for a range that is out of bounds or reversed
/// (which the diff never produces; this only keeps the merge panic-free).
fn slice<'s, 'a>(lines: &'s [&'a str], range: Range<usize>) -> &'s [&'a str] {
    lines.get(range).unwrap_or(&[])
}

fn owned(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

/// The merge proper, on split lines, without the whole-text shortcuts.
fn merge_lines(base: &[&str], ours: &[&str], theirs: &[&str]) -> MergeOutcome {
    let ours_hunks = hunks(base, ours);
    let theirs_hunks = hunks(base, theirs);
    let (mut i, mut j) = (0, 0);
    let mut pos = 0;
    let mut merged: Vec<&str> = Vec::new();
    let mut conflicts = Vec::new();

    while let Some(first) = next_side(ours_hunks.get(i), theirs_hunks.get(j)) {
        let (o_start, t_start) = (i, j);
        let mut span = match first {
            Side::Ours => ours_hunks[i].base.clone(),
            Side::Theirs => theirs_hunks[j].base.clone(),
        };
        match first {
            Side::Ours => i += 1,
            Side::Theirs => j += 1,
        }
        // Gather every hunk colliding with the region so far. Hunks come in
        // (start, end) order, so once the next one does not collide no later
        // one does either.
        while let Some(side) = next_side(ours_hunks.get(i), theirs_hunks.get(j)) {
            let h = match side {
                Side::Ours => &ours_hunks[i],
                Side::Theirs => &theirs_hunks[j],
            };
            if !collide(&span, &h.base) {
                break;
            }
            span.start = span.start.min(h.base.start);
            span.end = span.end.max(h.base.end);
            match side {
                Side::Ours => i += 1,
                Side::Theirs => j += 1,
            }
        }

        merged.extend_from_slice(slice(base, pos..span.start));
        pos = pos.max(span.end);
        let (oh, th) = (&ours_hunks[o_start..i], &theirs_hunks[t_start..j]);
        let ours_text = side_text(base, ours, &span, oh);
        if th.is_empty() {
            merged.extend(ours_text);
            continue;
        }
        let theirs_text = side_text(base, theirs, &span, th);
        if oh.is_empty() || ours_text == theirs_text {
            merged.extend(theirs_text);
            continue;
        }
        conflicts.push(ConflictRegion {
            base: owned(slice(base, span.clone())),
            base_lines: span,
            ours: owned(&ours_text),
            theirs: owned(&theirs_text),
        });
    }
    merged.extend_from_slice(slice(base, pos..base.len()));

    if conflicts.is_empty() {
        MergeOutcome::Clean(merged.concat())
    } else {
        MergeOutcome::Conflicts(conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn clean(base: &str, ours: &str, theirs: &str) -> String {
        match merge3(base, ours, theirs) {
            MergeOutcome::Clean(s) => s,
            other => panic!("expected a clean merge, got {other:?}"),
        }
    }

    fn conflicts(base: &str, ours: &str, theirs: &str) -> Vec<ConflictRegion> {
        match merge3(base, ours, theirs) {
            MergeOutcome::Conflicts(c) => c,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    fn region(
        range: Range<usize>,
        base: &[&str],
        ours: &[&str],
        theirs: &[&str],
    ) -> ConflictRegion {
        ConflictRegion {
            base_lines: range,
            ours: lines(ours),
            theirs: lines(theirs),
            base: lines(base),
        }
    }

    #[test]
    fn splitting_keeps_terminators() {
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(split_lines("a"), vec!["a"]);
        assert_eq!(split_lines("a\n"), vec!["a\n"]);
        assert_eq!(split_lines("a\r\nb"), vec!["a\r\n", "b"]);
        assert_eq!(split_lines("\n\n"), vec!["\n", "\n"]);
    }

    #[test]
    fn shortcuts() {
        assert_eq!(
            merge3("b\n", "x\n", "x\n"),
            MergeOutcome::Clean("x\n".into())
        );
        assert_eq!(
            merge3("b\n", "b\n", "t\n"),
            MergeOutcome::Clean("t\n".into())
        );
        assert_eq!(
            merge3("b\n", "o\n", "b\n"),
            MergeOutcome::Clean("o\n".into())
        );
        assert_eq!(merge3("", "", ""), MergeOutcome::Clean(String::new()));
    }

    #[test]
    fn changes_in_different_regions_combine() {
        let base = "1\n2\n3\n4\n5\n";
        assert_eq!(
            clean(base, "one\n2\n3\n4\n5\n", "1\n2\n3\n4\nfive\n"),
            "one\n2\n3\n4\nfive\n"
        );
        // Insertions and deletions at distinct places.
        assert_eq!(
            clean(base, "0\n1\n2\n3\n4\n5\n", "1\n2\n4\n5\n6\n"),
            "0\n1\n2\n4\n5\n6\n"
        );
        // Changes of adjacent lines do not collide.
        assert_eq!(
            clean(base, "1\nTWO\n3\n4\n5\n", "1\n2\nTHREE\n4\n5\n"),
            "1\nTWO\nTHREE\n4\n5\n"
        );
    }

    #[test]
    fn same_change_on_both_sides_merges_once() {
        let base = "a\nb\nc\n";
        // Same edit of b; theirs also appends d.
        assert_eq!(clean(base, "a\nB\nc\n", "a\nB\nc\nd\n"), "a\nB\nc\nd\n");
        // Same insertion at the same point plus different edits elsewhere.
        assert_eq!(
            clean(base, "A\na\nnew\nb\nc\n", "a\nnew\nb\nc\nC\n"),
            "A\na\nnew\nb\nc\nC\n"
        );
        // Both delete the same line.
        assert_eq!(clean(base, "a\nc\n", "a\nc\nd\n"), "a\nc\nd\n");
        // The engine itself (no shortcut) applies identical changes once.
        let b = split_lines(base);
        let o = split_lines("x\nb\ny\n");
        assert_eq!(
            merge_lines(&b, &o, &o),
            MergeOutcome::Clean("x\nb\ny\n".into())
        );
    }

    #[test]
    fn overlapping_different_changes_conflict() {
        let base = "a\nb\nc\nd\n";
        assert_eq!(
            conflicts(base, "a\nX\nc\nd\n", "a\nY\nd\n"),
            vec![region(1..3, &["b\n", "c\n"], &["X\n", "c\n"], &["Y\n"])]
        );
        assert_eq!(
            conflicts(base, "a\nX\nc\nd\n", "a\nY\nc\nd\n"),
            vec![region(1..2, &["b\n"], &["X\n"], &["Y\n"])]
        );
        // Chained overlaps form one region: ours changes b,c and theirs c,d.
        assert_eq!(
            conflicts("a\nb\nc\nd\ne\n", "a\nB\nC\nd\ne\n", "a\nb\nCC\nDD\ne\n"),
            vec![region(
                1..4,
                &["b\n", "c\n", "d\n"],
                &["B\n", "C\n", "d\n"],
                &["b\n", "CC\n", "DD\n"],
            )]
        );
    }

    #[test]
    fn every_conflict_is_reported() {
        let base = "1\n2\n3\n4\n5\n6\n7\n";
        let got = conflicts(base, "1\nA\n3\n4\n5\nB\n7\n", "1\nX\n3\nfour\n5\nY\n7\n");
        assert_eq!(
            got,
            vec![
                region(1..2, &["2\n"], &["A\n"], &["X\n"]),
                region(5..6, &["6\n"], &["B\n"], &["Y\n"]),
            ]
        );
    }

    #[test]
    fn insertions_at_the_same_point() {
        let base = "a\nb\n";
        assert_eq!(
            conflicts(base, "a\nX\nb\n", "a\nY\nb\n"),
            vec![region(1..1, &[], &["X\n"], &["Y\n"])]
        );
        assert_eq!(
            conflicts(base, "X\na\nb\n", "Y\na\nb\n"),
            vec![region(0..0, &[], &["X\n"], &["Y\n"])]
        );
        // Identical insertions (with another change so no shortcut applies).
        assert_eq!(clean(base, "a\nX\nb\n", "a\nX\nb\nc\n"), "a\nX\nb\nc\n");
        // Insertion next to a line the other side changed collides.
        assert_eq!(
            conflicts(base, "a\nX\nb\n", "a\nB\n"),
            vec![region(1..2, &["b\n"], &["X\n", "b\n"], &["B\n"])]
        );
        // Insertions at different points combine.
        assert_eq!(clean(base, "X\na\nb\n", "a\nb\nY\n"), "X\na\nb\nY\n");
    }

    #[test]
    fn deletions_versus_edits() {
        let base = "a\nb\nc\n";
        assert_eq!(
            conflicts(base, "a\nc\n", "a\nB\nc\n"),
            vec![region(1..2, &["b\n"], &[], &["B\n"])]
        );
        assert_eq!(
            conflicts(base, "a\nB\nc\n", "a\nc\n"),
            vec![region(1..2, &["b\n"], &["B\n"], &[])]
        );
        // Deleting one line while the other side edits another combines.
        assert_eq!(clean(base, "b\nc\n", "a\nb\nC\n"), "b\nC\n");
    }

    #[test]
    fn empty_base() {
        assert_eq!(
            conflicts("", "x\n", "y\n"),
            vec![region(0..0, &[], &["x\n"], &["y\n"])]
        );
        assert_eq!(clean("", "x\n", ""), "x\n");
        assert_eq!(clean("", "", "y\n"), "y\n");
        assert_eq!(clean("", "x\n", "x\n"), "x\n");
        let e = split_lines("");
        let x = split_lines("x\ny");
        assert_eq!(merge_lines(&e, &x, &x), MergeOutcome::Clean("x\ny".into()));
    }

    #[test]
    fn missing_final_newline_is_preserved() {
        let base = "a\nb\nc";
        assert_eq!(clean(base, "a\nB\nc", "a\nb\nC"), "a\nB\nC");
        // Theirs adds the final newline, ours edits elsewhere.
        assert_eq!(clean(base, "A\nb\nc", "a\nb\nc\n"), "A\nb\nc\n");
        // Ours removes a final newline, theirs edits elsewhere.
        assert_eq!(clean("a\nb\nc\n", "a\nb\nc", "A\nb\nc\n"), "A\nb\nc");
        // Both append to an unterminated last line differently.
        assert_eq!(
            conflicts("a\nb", "a\nb\nx", "a\nb\ny"),
            vec![region(1..2, &["b"], &["b\n", "x"], &["b\n", "y"])]
        );
        // Adding vs. not adding a newline while the other side edits the line.
        assert_eq!(
            conflicts("a\nb", "a\nb\n", "a\nB"),
            vec![region(1..2, &["b"], &["b\n"], &["B"])]
        );
    }

    #[test]
    fn crlf_lines() {
        let base = "a\r\nb\r\nc\r\n";
        assert_eq!(
            clean(base, "A\r\nb\r\nc\r\n", "a\r\nb\r\nC\r\n"),
            "A\r\nb\r\nC\r\n"
        );
        assert_eq!(
            conflicts(base, "a\r\nX\r\nc\r\n", "a\r\nY\r\nc\r\n"),
            vec![region(1..2, &["b\r\n"], &["X\r\n"], &["Y\r\n"])]
        );
        // A line-ending change is a change of that line.
        assert_eq!(
            conflicts(base, "a\r\nb\nc\r\n", "a\r\nB\r\nc\r\n"),
            vec![region(1..2, &["b\r\n"], &["b\n"], &["B\r\n"])]
        );
    }

    #[test]
    fn both_append_different_lines_at_the_end() {
        assert_eq!(
            conflicts("a\nb\n", "a\nb\nx\n", "a\nb\ny\nz\n"),
            vec![region(2..2, &[], &["x\n"], &["y\n", "z\n"])]
        );
        // Even when one appended block extends the other: the region differs.
        assert_eq!(
            conflicts("a\nb\n", "a\nb\nx\n", "a\nb\nx\ny\n"),
            vec![region(2..2, &[], &["x\n"], &["x\n", "y\n"])]
        );
        // The same appended lines (plus another change) merge once.
        assert_eq!(clean("a\nb\n", "a\nb\nx\n", "A\nb\nx\n"), "A\nb\nx\n");
    }

    #[test]
    fn one_side_deletes_everything() {
        let base = "a\nb\nc\n";
        assert_eq!(clean(base, "", base), "");
        assert_eq!(clean(base, base, ""), "");
        assert_eq!(
            conflicts(base, "", "a\nB\nc\n"),
            vec![region(
                0..3,
                &["a\n", "b\n", "c\n"],
                &[],
                &["a\n", "B\n", "c\n"]
            )]
        );
        assert_eq!(
            conflicts(base, "a\nb\nc\nd\n", ""),
            vec![region(
                0..3,
                &["a\n", "b\n", "c\n"],
                &["a\n", "b\n", "c\n", "d\n"],
                &[]
            )]
        );
    }

    /// Applies hunks of `side` to `base`.
    fn apply(base: &[&str], side: &[&str], hs: &[Hunk]) -> String {
        side_text(base, side, &(0..base.len()), hs).concat()
    }

    #[test]
    fn hunks_have_consistent_positions() {
        // `similar`'s Compact pass reports a stale index here (similar#78).
        let b = split_lines("b\n\n");
        let o = split_lines("\na\n\n");
        let hs = hunks(&b, &o);
        assert_eq!(apply(&b, &o, &hs), "\na\n\n");
        assert!(hunks(&b, &b).is_empty());
    }

    #[test]
    fn mergeable_text() {
        assert!(is_mergeable_text(b""));
        assert!(is_mergeable_text(b"hello\nworld\r\n"));
        assert!(is_mergeable_text("héllo ✓\n".as_bytes()));
        assert!(!is_mergeable_text(b"a\0b"));
        assert!(!is_mergeable_text(&[0xff, 0xfe, b'a']));
        assert!(!is_mergeable_text(&[b'a', 0xc3])); // truncated UTF-8
        assert!(is_mergeable_text(&vec![b'x'; MAX_MERGEABLE_TEXT - 1]));
        assert!(!is_mergeable_text(&vec![b'x'; MAX_MERGEABLE_TEXT]));
    }

    // ---- properties -------------------------------------------------------

    /// A line from a tiny alphabet, so independent edits collide often.
    fn line() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a\n", "b\n", "c\n", "\n", "a\r\n"]).prop_map(str::to_owned)
    }

    /// A document as lines, all terminated.
    fn doc_lines(max: usize) -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(line(), 0..=max)
    }

    /// Random edits (delete / insert / replace at a position) of `lines`.
    fn edited(lines: Vec<String>) -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec((0u8..3, any::<prop::sample::Index>(), line()), 0..4).prop_map(
            move |edits| {
                let mut v = lines.clone();
                for (kind, at, l) in edits {
                    match kind {
                        0 if !v.is_empty() => {
                            let i = at.index(v.len());
                            v.remove(i);
                        }
                        2 if !v.is_empty() => {
                            let i = at.index(v.len());
                            v[i] = l;
                        }
                        _ => {
                            let i = at.index(v.len() + 1);
                            v.insert(i, l);
                        }
                    }
                }
                v
            },
        )
    }

    /// Renders lines, optionally dropping the final newline.
    fn render(lines: &[String], trailing_newline: bool) -> String {
        let mut s = lines.concat();
        if !trailing_newline && s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    }

    /// (base, ours, theirs): ours and theirs are edits of base, each text with
    /// or without a final newline; sometimes ours/theirs are independent docs.
    fn triple() -> impl Strategy<Value = (String, String, String)> {
        doc_lines(8)
            .prop_flat_map(|b| {
                let o = prop_oneof![3 => edited(b.clone()), 1 => doc_lines(6)];
                let t = prop_oneof![3 => edited(b.clone()), 1 => doc_lines(6)];
                (Just(b), o, t, any::<(bool, bool, bool)>())
            })
            .prop_map(|(b, o, t, (nb, no, nt))| {
                (
                    render(&b, nb || b.len() % 3 != 0),
                    render(&o, no || o.len() % 3 != 0),
                    render(&t, nt || t.len() % 3 != 0),
                )
            })
    }

    fn swap(r: &ConflictRegion) -> ConflictRegion {
        ConflictRegion {
            base_lines: r.base_lines.clone(),
            ours: r.theirs.clone(),
            theirs: r.ours.clone(),
            base: r.base.clone(),
        }
    }

    fn full_merge(b: &str, o: &str, t: &str) -> MergeOutcome {
        merge_lines(&split_lines(b), &split_lines(o), &split_lines(t))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// (1) Both sides equal: the merge is that side (also without shortcuts).
        #[test]
        fn prop_same_both_sides((b, o, _t) in triple()) {
            prop_assert_eq!(merge3(&b, &o, &o), MergeOutcome::Clean(o.clone()));
            prop_assert_eq!(full_merge(&b, &o, &o), MergeOutcome::Clean(o.clone()));
        }

        /// (2) One side unchanged: the merge is the other side (also without shortcuts).
        #[test]
        fn prop_one_side_unchanged((b, o, t) in triple()) {
            prop_assert_eq!(merge3(&b, &b, &t), MergeOutcome::Clean(t.clone()));
            prop_assert_eq!(merge3(&b, &o, &b), MergeOutcome::Clean(o.clone()));
            prop_assert_eq!(full_merge(&b, &b, &t), MergeOutcome::Clean(t.clone()));
            prop_assert_eq!(full_merge(&b, &o, &b), MergeOutcome::Clean(o.clone()));
        }

        /// (3) Symmetry: same cleanliness, same clean text, swapped conflicts.
        #[test]
        fn prop_symmetric((b, o, t) in triple()) {
            match (merge3(&b, &o, &t), merge3(&b, &t, &o)) {
                (MergeOutcome::Clean(x), MergeOutcome::Clean(y)) => prop_assert_eq!(x, y),
                (MergeOutcome::Conflicts(x), MergeOutcome::Conflicts(y)) => {
                    let swapped: Vec<_> = y.iter().map(swap).collect();
                    prop_assert_eq!(x, swapped);
                }
                (x, y) => prop_assert!(false, "asymmetric: {:?} vs {:?}", x, y),
            }
        }

        /// Conflict regions are non-empty lists, in base order, disjoint, in
        /// bounds, carry the right base text, and really differ.
        #[test]
        fn prop_conflicts_well_formed((b, o, t) in triple()) {
            if let MergeOutcome::Conflicts(regions) = merge3(&b, &o, &t) {
                let base_lines = split_lines(&b);
                prop_assert!(!regions.is_empty());
                let mut prev_end = 0;
                for (k, r) in regions.iter().enumerate() {
                    prop_assert!(r.base_lines.start <= r.base_lines.end);
                    prop_assert!(r.base_lines.end <= base_lines.len());
                    if k > 0 {
                        prop_assert!(r.base_lines.start > prev_end
                            || (r.base_lines.start == prev_end && !r.base_lines.is_empty()));
                    }
                    prev_end = r.base_lines.end;
                    prop_assert_eq!(&r.base, &owned(&base_lines[r.base_lines.clone()]));
                    prop_assert_ne!(&r.ours, &r.theirs);
                }
            }
        }

        /// (4) Ours edits only the first half of base, theirs only the second:
        /// clean, and equal to applying both edits. A unique separator line
        /// that neither side touches splits the halves, so that no minimal diff
        /// can attribute an edit to the other half (the alphabet is tiny, so
        /// without it a deleted "a" at the end of one half could as well be
        /// the "a" starting the other).
        #[test]
        fn prop_disjoint_halves_merge_cleanly(
            (first, second, ours_first, theirs_second) in (doc_lines(6), doc_lines(6))
                .prop_flat_map(|(f, s)| (Just(f.clone()), Just(s.clone()), edited(f), edited(s)))
        ) {
            let sep = vec!["--separator--\n".to_owned()];
            let base = [first.clone(), sep.clone(), second.clone()].concat().concat();
            let ours = [ours_first.clone(), sep.clone(), second].concat().concat();
            let theirs = [first, sep.clone(), theirs_second.clone()].concat().concat();
            let expected = [ours_first, sep, theirs_second].concat().concat();
            prop_assert_eq!(merge3(&base, &ours, &theirs), MergeOutcome::Clean(expected.clone()));
            prop_assert_eq!(full_merge(&base, &ours, &theirs), MergeOutcome::Clean(expected));
        }

        /// The hunks of a diff are ordered, separated by unchanged base lines,
        /// and applying them to base yields the side.
        #[test]
        fn prop_hunks_reconstruct((b, o, _t) in triple()) {
            let (bl, ol) = (split_lines(&b), split_lines(&o));
            let hs = hunks(&bl, &ol);
            for w in hs.windows(2) {
                prop_assert!(w[0].base.end < w[1].base.start);
                prop_assert!(w[0].new.end < w[1].new.start);
            }
            prop_assert_eq!(apply(&bl, &ol, &hs), o);
        }

        /// Never panics on arbitrary text, including lone CRs and no newlines.
        #[test]
        fn prop_never_panics(b in "[ab\r\n]{0,12}", o in "[ab\r\n]{0,12}", t in "[ab\r\n]{0,12}") {
            let _ = merge3(&b, &o, &t);
            let _ = full_merge(&b, &o, &t);
        }
    }
}
