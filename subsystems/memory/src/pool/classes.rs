//! Size classes: which free list serves a request and which one takes a returned value.

use crate::error::MemoryError;

/// The sorted size classes of a pool, with an arithmetic fast path when they are
/// consecutive powers of two (the default), and a binary search otherwise.
#[derive(Debug, Clone)]
pub(crate) struct SizeClasses {
    /// `log2(sizes[0])` when `sizes[i] == sizes[0] << i` for every `i`.
    pow2_min_shift: Option<u32>,
    smallest: usize,
    largest: usize,
    sizes: Box<[usize]>,
}

impl SizeClasses {
    /// Validates, sorts and deduplicates `sizes`.
    pub(crate) fn new(mut sizes: Vec<usize>) -> Result<Self, MemoryError> {
        if sizes.is_empty() {
            return Err(MemoryError::InvalidConfig(
                "a pool needs at least one size class".to_owned(),
            ));
        }
        if sizes.contains(&0) {
            return Err(MemoryError::InvalidSize {
                size: 0,
                reason: "a size class must be at least 1",
            });
        }
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.len() > super::magazine::MAX_CLASSES {
            return Err(MemoryError::InvalidConfig(format!(
                "{} size classes given, at most {} are supported",
                sizes.len(),
                super::magazine::MAX_CLASSES
            )));
        }
        let first = sizes[0];
        let pow2 = first.is_power_of_two()
            && sizes
                .iter()
                .enumerate()
                .all(|(i, &s)| u32::try_from(i).is_ok_and(|i| first.checked_shl(i) == Some(s)));
        Ok(Self {
            pow2_min_shift: pow2.then(|| first.trailing_zeros()),
            smallest: first,
            largest: sizes[sizes.len() - 1],
            sizes: sizes.into_boxed_slice(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.sizes.len()
    }

    pub(crate) fn size(&self, class: usize) -> usize {
        self.sizes[class]
    }

    pub(crate) fn largest(&self) -> usize {
        self.largest
    }

    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The smallest class holding at least `n`, or `None` when `n` is over the largest.
    #[inline(always)]
    pub(crate) fn ceil_index(&self, n: usize) -> Option<usize> {
        let index = match self.pow2_min_shift {
            Some(min_shift) => {
                // The class of `n` is the bit length of `n - 1`, less `min_shift`; or-ing
                // in `smallest - 1` sends every `n <= smallest` to class 0 without a
                // branch. `2x + 1` has the bit length of `x` as its log2 and is never
                // zero (no zero check); it cannot overflow, as `n <= largest <= 2^63` is
                // checked below before the index is used.
                let x = n.saturating_sub(1) | (self.smallest - 1);
                (x.wrapping_shl(1) | 1).ilog2().wrapping_sub(min_shift) as usize
            }
            None => self.search_ceil(n),
        };
        (n <= self.largest).then_some(index)
    }

    /// The largest class not over `capacity`: the free list that may keep a value of
    /// that capacity. `None` when the capacity is under the smallest class or over the
    /// largest (such a value would hold more than any class promises, so it is dropped).
    #[inline(always)]
    pub(crate) fn floor_index(&self, capacity: usize) -> Option<usize> {
        // One compare for both bounds: under `smallest` wraps to a huge difference.
        if capacity.wrapping_sub(self.smallest) > self.largest - self.smallest {
            return None;
        }
        let index = match self.pow2_min_shift {
            // `capacity >= smallest >= 1`, and `| 1` changes no log2 of a nonzero value
            // while telling the compiler it is nonzero.
            Some(min_shift) => ((capacity | 1).ilog2() - min_shift) as usize,
            None => self.search_floor(capacity),
        };
        Some(index)
    }

    /// `ceil_index` for classes that are not consecutive powers of two (out of line: it
    /// would crowd the inlined fast paths).
    #[inline(never)]
    fn search_ceil(&self, n: usize) -> usize {
        self.sizes.partition_point(|&s| s < n)
    }

    /// `floor_index` for other classes, for a capacity within the class range.
    #[inline(never)]
    fn search_floor(&self, capacity: usize) -> usize {
        self.sizes.partition_point(|&s| s <= capacity) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_classes() -> SizeClasses {
        SizeClasses::new((6..=20).map(|s| 1usize << s).collect()).unwrap()
    }

    #[test]
    fn powers_of_two_take_the_arithmetic_path() {
        let classes = default_classes();
        assert!(classes.pow2_min_shift.is_some());
        assert_eq!(classes.ceil_index(0), Some(0));
        assert_eq!(classes.ceil_index(64), Some(0));
        assert_eq!(classes.ceil_index(65), Some(1));
        assert_eq!(classes.ceil_index(1024), Some(4));
        assert_eq!(classes.ceil_index(1 << 20), Some(14));
        assert_eq!(classes.ceil_index((1 << 20) + 1), None);
        assert_eq!(classes.ceil_index(usize::MAX), None);
        assert_eq!(classes.floor_index(63), None);
        assert_eq!(classes.floor_index(64), Some(0));
        assert_eq!(classes.floor_index(127), Some(0));
        assert_eq!(classes.floor_index(128), Some(1));
        assert_eq!(classes.floor_index(1 << 20), Some(14));
        assert_eq!(classes.floor_index((1 << 20) + 1), None);
    }

    #[test]
    fn arbitrary_classes_use_binary_search_and_agree_with_a_scan() {
        let classes = SizeClasses::new(vec![1000, 24, 24, 100, 7]).unwrap();
        assert!(classes.pow2_min_shift.is_none());
        assert_eq!(classes.sizes(), &[7, 24, 100, 1000]);
        for n in 0..1200 {
            let scan = classes.sizes().iter().position(|&s| s >= n);
            assert_eq!(classes.ceil_index(n), scan, "ceil {n}");
            let floor = classes.sizes().iter().rposition(|&s| s <= n);
            let floor = if n > 1000 { None } else { floor };
            assert_eq!(classes.floor_index(n), floor, "floor {n}");
        }
    }

    #[test]
    fn pow2_path_agrees_with_a_scan() {
        let classes = default_classes();
        for n in (0..(1 << 21)).step_by(61) {
            let scan = classes.sizes().iter().position(|&s| s >= n);
            assert_eq!(classes.ceil_index(n), scan, "ceil {n}");
            let floor = if n > classes.largest() {
                None
            } else {
                classes.sizes().iter().rposition(|&s| s <= n)
            };
            assert_eq!(classes.floor_index(n), floor, "floor {n}");
        }
    }

    #[test]
    fn at_most_32_classes_are_accepted() {
        assert!(SizeClasses::new((1..=32).collect()).is_ok());
        assert!(matches!(
            SizeClasses::new((1..=33).collect()),
            Err(MemoryError::InvalidConfig(_))
        ));
    }

    #[test]
    fn empty_or_zero_classes_are_refused() {
        assert!(matches!(
            SizeClasses::new(vec![]),
            Err(MemoryError::InvalidConfig(_))
        ));
        assert!(matches!(
            SizeClasses::new(vec![0, 64]),
            Err(MemoryError::InvalidSize { size: 0, .. })
        ));
    }
}
