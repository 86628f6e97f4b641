//! Planning chunks so that chunks are independent (DESIGN "The import pipeline"): rows that
//! share any identity value (a 64-bit hash of the normalised email or mobile) form a group by
//! union-find; every group is processed inside the chunk of its first row, in file order. A
//! chunk is a contiguous byte range of the file minus the rows moved out, plus the rows moved
//! in (their bytes travel in a small "extras" object). Then chunks can run in any order, in
//! parallel, and the result equals applying the file row by row.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use super::csv::Span;

/// A stable 64-bit hash of an identity value (collisions only merge two groups).
pub fn identity_hash(kind: &str, normalized: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    kind.hash(&mut h);
    normalized.hash(&mut h);
    h.finish()
}

/// Union-find over row positions, keyed by identity hashes.
#[derive(Debug, Default)]
pub struct Groups {
    parent: Vec<u32>,
    owner: HashMap<u64, u32>,
}

impl Groups {
    /// Adds the next row (rows are added in file order) with its identity hashes.
    pub fn add(&mut self, hashes: &[u64]) {
        let row = self.parent.len() as u32;
        self.parent.push(row);
        for h in hashes {
            match self.owner.get(h) {
                Some(&other) => self.union(row, other),
                None => {
                    self.owner.insert(*h, row);
                }
            }
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// The earlier row becomes the root, so a group's root is its first row.
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The first row of `row`'s group.
    pub fn first_of(&mut self, row: u32) -> u32 {
        self.find(row)
    }
}

/// One chunk: the byte range of its natural rows, the record indexes moved out of it and in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSpec {
    pub number: u32,
    pub start: u64,
    pub end: u64,
    /// Record index of the first record in `[start, end)`.
    pub first_index: u64,
    /// Records in the range that another chunk processes.
    #[serde(default)]
    pub skip: Vec<u64>,
    /// Records from elsewhere this chunk processes (bytes in the extras object, in this order).
    #[serde(default)]
    pub extras: Vec<u64>,
}

impl ChunkSpec {
    /// Rows this chunk processes.
    pub fn row_count(&self, natural: u64) -> u64 {
        natural - self.skip.len() as u64 + self.extras.len() as u64
    }
}

/// Cuts data records (`spans`, in file order, the same order rows were added to `groups`) into
/// chunks of about `rows_per_chunk` natural rows and moves every row to its group's chunk.
pub fn plan(spans: &[Span], groups: &mut Groups, rows_per_chunk: usize) -> Vec<ChunkSpec> {
    let per = rows_per_chunk.max(1);
    let natural = |pos: usize| (pos / per) as u32;
    let mut chunks: Vec<ChunkSpec> = spans
        .chunks(per)
        .enumerate()
        .map(|(n, s)| ChunkSpec {
            number: n as u32,
            start: s[0].start,
            end: s[s.len() - 1].end,
            first_index: s[0].index,
            skip: vec![],
            extras: vec![],
        })
        .collect();
    for (pos, span) in spans.iter().enumerate() {
        let first = groups.first_of(pos as u32) as usize;
        let (home, target) = (natural(pos), natural(first));
        if home != target {
            chunks[home as usize].skip.push(span.index);
            chunks[target as usize].extras.push(span.index);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(n: u64) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                start: i * 10,
                end: i * 10 + 9,
                index: i + 1,
            })
            .collect()
    }

    #[test]
    fn split_keeps_singletons_in_their_natural_chunk() {
        let mut g = Groups::default();
        for i in 0..10u64 {
            g.add(&[i]);
        }
        let plan = plan(&spans(10), &mut g, 4);
        assert_eq!(plan.len(), 3);
        assert!(plan
            .iter()
            .all(|c| c.skip.is_empty() && c.extras.is_empty()));
        assert_eq!(
            (plan[1].start, plan[1].end, plan[1].first_index),
            (40, 79, 5)
        );
    }

    #[test]
    fn split_moves_later_duplicates_to_the_first_rows_chunk() {
        let mut g = Groups::default();
        for i in 0..10u64 {
            g.add(&[if i == 9 { 1 } else { i }]);
        }
        let plan = plan(&spans(10), &mut g, 4);
        assert_eq!(
            plan[2].skip,
            vec![10],
            "record index 10 (row 9) leaves chunk 2"
        );
        assert_eq!(
            plan[0].extras,
            vec![10],
            "and joins chunk 0, where its group started"
        );
    }

    #[test]
    fn split_merges_groups_bridged_by_a_later_row() {
        // rows: 0 (A), 5 (B), 9 (A and B): all three end in chunk 0.
        let mut g = Groups::default();
        for i in 0..10u64 {
            let hashes: Vec<u64> = match i {
                0 => vec![100],
                5 => vec![200],
                9 => vec![100, 200],
                _ => vec![i],
            };
            g.add(&hashes);
        }
        let plan = plan(&spans(10), &mut g, 4);
        assert_eq!(plan[0].extras, vec![6, 10]);
        assert_eq!(
            (plan[1].skip.clone(), plan[2].skip.clone()),
            (vec![6], vec![10])
        );
    }
}
