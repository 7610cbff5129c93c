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

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// An empty list without storage (a magazine list before its thread uses the class).
    pub(crate) const fn new() -> Self {
        Self {
            items: Vec::new(),
            low_water: 0,
            idle_before: 0,
        }
    }

    /// Whether the list has storage: a magazine list gets it the first time its thread
    /// keeps a value of the class.
    #[inline(always)]
    pub(crate) fn is_provisioned(&self) -> bool {
        self.items.capacity() != 0
    }

    /// Gives an empty, unprovisioned list room for exactly `capacity` values (its cap).
    pub(crate) fn provision(&mut self, capacity: usize) {
        debug_assert!(self.items.is_empty());
        // `with_capacity` allocates exactly the capacity asked for.
        self.items = Vec::with_capacity(capacity);
    }

    /// Whether a push fits in the list's allocation (a magazine list's capacity is its
    /// class's cap).
    #[inline(always)]
    pub(crate) fn has_room(&self) -> bool {
        self.items.len() < self.items.capacity()
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T, bytes: usize) {
        self.items.push((value, bytes));
    }

    /// Pops the most recently pushed value and its bytes.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<(T, usize)> {
        if self.is_empty() {
            return None;
        }
        // SAFETY: the list is not empty.
        Some(unsafe { self.pop_unchecked() })
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Pops the top item without moving its value: returns a pointer to the value and
    /// its bytes. The list no longer owns the value; the caller moves it out (once)
    /// before the list is used again.
    ///
    /// # Safety
    /// The list is not empty; the returned pointer is read before any other use of
    /// the list, and the value is moved out of it exactly once.
    #[inline(always)]
    pub(crate) unsafe fn pop_in_place(&mut self) -> (*const T, usize) {
        let len = self.items.len() - 1;
        // SAFETY: the list is not empty, so slot `len` is an initialised item in the
        // list's allocation; `set_len` gives it up to the caller without touching it.
        let item = unsafe {
            self.items.set_len(len);
            self.items.as_ptr().add(len)
        };
        if len < self.low_water {
            self.low_water = len;
        }
        // SAFETY: `item` points to an initialised `(T, usize)`; `&raw const` takes the
        // field addresses without creating references.
        unsafe { (&raw const (*item).0, (&raw const (*item).1).read()) }
    }

    /// `pop` on a list known not to be empty (no `Option` for the caller to test again).
    ///
    /// # Safety
    /// The list is not empty.
    #[inline(always)]
    pub(crate) unsafe fn pop_unchecked(&mut self) -> (T, usize) {
        let len = self.items.len() - 1;
        // SAFETY: the list is not empty (the caller's contract), so slot `len` holds an
        // initialised item, which `set_len` gives up: it is read exactly once.
        let popped = unsafe {
            let item = read_by_words(self.items.as_ptr().add(len));
            self.items.set_len(len);
            item
        };
        if len < self.low_water {
            self.low_water = len;
        }
        popped
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

/// Reads `*src`, one machine word at a time when the type is made of whole words.
///
/// A value pushed on a list was written with word-sized stores (its fields came from
/// registers); the compiler copies a 24-byte `Vec` with one 8-byte and one 16-byte load,
/// and a load that spans two pending stores cannot take its data from the store buffer:
/// it waits for both stores to reach the cache. Popping the value just pushed (a steady
/// allocate/release cycle) hit that stall on every cycle. Volatile word loads cannot be
/// merged into a wider load, so each one forwards from the store of the same word.
///
/// # Safety
/// As `ptr::read`: `src` is valid for reads, aligned, and holds an initialised `U`.
#[inline(always)]
pub(crate) unsafe fn read_by_words<U>(src: *const U) -> U {
    const WORD: usize = size_of::<usize>();
    if !size_of::<U>().is_multiple_of(WORD) || align_of::<U>() < WORD {
        // SAFETY: the caller's contract.
        return unsafe { src.read() };
    }
    let mut out = std::mem::MaybeUninit::<U>::uninit();
    let from = src.cast::<std::mem::MaybeUninit<usize>>();
    let to = out.as_mut_ptr().cast::<std::mem::MaybeUninit<usize>>();
    for i in 0..size_of::<U>() / WORD {
        // SAFETY: `U` is a whole number of words and word-aligned, so word `i` is in
        // bounds and aligned in both. The words are copied as `MaybeUninit<usize>`,
        // which keeps every byte as it is (padding and pointer provenance included),
        // so `out` ends up a byte-for-byte copy of `*src`.
        unsafe { to.add(i).write(from.add(i).read_volatile()) };
    }
    // SAFETY: a byte-for-byte copy of an initialised `U`; `src` is not used as a `U`
    // again (the caller's contract, as for `ptr::read`).
    unsafe { out.assume_init() }
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
