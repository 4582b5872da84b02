//! [`InlineList`]: a list whose first `N` items live inline, the rest on the heap. The emulation
//! collects a few items on paths taken for every message (the IRPs one provider step completes, the
//! threads one `KeSetEvent` wakes), and an ordinary `Vec` would allocate there each time.

/// Items in the order they were pushed; the first `N` without a heap allocation.
pub(crate) struct InlineList<T, const N: usize> {
    inline: [Option<T>; N],
    len: usize,
    more: Vec<T>,
}

impl<T, const N: usize> InlineList<T, N> {
    pub(crate) const fn new() -> Self {
        Self {
            inline: [const { None }; N],
            len: 0,
            more: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(item);
                self.len += 1;
            }
            None => self.more.push(item),
        }
    }

    /// In the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.inline.iter().flatten().chain(self.more.iter())
    }

    /// The items, by value, in the order they were pushed.
    pub(crate) fn into_items(self) -> impl Iterator<Item = T> {
        self.inline.into_iter().flatten().chain(self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::InlineList;

    #[test]
    fn items_come_back_in_push_order_past_the_inline_part() {
        let mut list = InlineList::<u32, 2>::new();
        assert_eq!(list.iter().count(), 0);
        for i in 0..5 {
            list.push(i);
        }
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }
}
