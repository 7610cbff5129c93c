//! `FreeList`: a LIFO stack of free values of one size class, with its low-water mark.

/// A LIFO stack of free values of one class, each stored with its heap bytes (so no
/// `Poolable` method runs while a list is borrowed or locked). Push and pop touch only
/// the stack and the low-water mark; byte sums are computed when a check needs them.
pub(crate) struct FreeList<T> {
    items: Vec<(T, usize)>,
    /// The smallest length the stack had since the current interval began. The bottom
    /// `low_water` values were not popped in the interval (the stack is LIFO): they are
    /// the idle ones.
    low_water: usize,
    /// How many bottom values were idle over the whole previous interval and kept (0
    /// after a trim). `min(idle_before, low_water)` values have been idle since the start
    /// of the previous interval: the figure statistics report, which, unlike `low_water`
    /// alone, does not read "all idle" just after an interval starts.
    idle_before: usize,
}

impl<T> FreeList<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            low_water: 0,
            idle_before: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T, bytes: usize) {
        self.items.push((value, bytes));
    }

    /// Pops the most recently pushed value and its bytes.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(T, usize)> {
        let popped = self.items.pop()?;
        if self.items.len() < self.low_water {
            self.low_water = self.items.len();
        }
        Some(popped)
    }

    /// Bytes of all values.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes_of_bottom(self.items.len())
    }

    /// Bytes of the values idle in the current interval.
    pub(crate) fn idle_bytes_now(&self) -> usize {
        self.bytes_of_bottom(self.low_water)
    }

    /// Bytes of the values idle since the start of the previous interval.
    pub(crate) fn idle_bytes_settled(&self) -> usize {
        self.bytes_of_bottom(self.idle_before.min(self.low_water))
    }

    /// Hands the values idle in this interval to `sink`, oldest first, and starts a new
    /// interval; returns their count and bytes.
    pub(crate) fn drain_idle(&mut self, mut sink: impl FnMut(T, usize)) -> (usize, usize) {
        let count = self.low_water;
        let mut bytes = 0;
        for (value, value_bytes) in self.items.drain(..count) {
            bytes += value_bytes;
            sink(value, value_bytes);
        }
        self.idle_before = 0;
        self.restart();
        (count, bytes)
    }

    /// Hands every value to `sink`; returns their count and bytes.
    pub(crate) fn drain_all(&mut self, sink: impl FnMut(T, usize)) -> (usize, usize) {
        self.low_water = self.items.len();
        self.drain_idle(sink)
    }

    /// Ends the interval without trimming: the idle values are remembered as idle before.
    pub(crate) fn keep_and_restart(&mut self) {
        self.idle_before = self.low_water;
        self.restart();
    }

    /// Starts a new interval: every value now on the list is a candidate for being idle
    /// until an allocation pops below it.
    pub(crate) fn restart(&mut self) {
        self.low_water = self.items.len();
    }

    fn bytes_of_bottom(&self, count: usize) -> usize {
        self.items[..count].iter().map(|(_, bytes)| bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of(n: usize) -> FreeList<usize> {
        let mut list = FreeList::with_capacity(n);
        for i in 0..n {
            list.push(i, 10);
        }
        list
    }

    fn drained(list: &mut FreeList<usize>, all: bool) -> (Vec<usize>, usize) {
        let mut out = Vec::new();
        let sink = |value, _| out.push(value);
        let (count, bytes) = if all {
            list.drain_all(sink)
        } else {
            list.drain_idle(sink)
        };
        assert_eq!(count, out.len());
        (out, bytes)
    }

    #[test]
    fn the_low_water_mark_finds_values_no_pop_reached() {
        let mut list = list_of(5);
        list.restart();
        assert_eq!(list.idle_bytes_now(), 50);
        list.pop();
        list.pop();
        list.push(9, 10);
        assert_eq!(list.idle_bytes_now(), 30);
        assert_eq!(drained(&mut list, false), (vec![0, 1, 2], 30));
        assert_eq!((list.len(), list.bytes()), (1, 10));
        assert_eq!(list.idle_bytes_now(), 10, "a new interval began");
    }

    #[test]
    fn settled_idleness_needs_a_whole_interval() {
        let mut list = list_of(4);
        list.restart();
        assert_eq!(
            list.idle_bytes_settled(),
            0,
            "nothing known before an interval ends"
        );
        list.pop();
        list.keep_and_restart();
        assert_eq!(list.idle_bytes_settled(), 30);
        list.pop();
        assert_eq!(list.idle_bytes_settled(), 20);
    }

    #[test]
    fn drain_all_empties_the_list() {
        let mut list = list_of(3);
        assert_eq!(drained(&mut list, true), (vec![0, 1, 2], 30));
        assert_eq!((list.len(), list.bytes(), list.idle_bytes_now()), (0, 0, 0));
    }
}
