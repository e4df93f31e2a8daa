//! Byte offsets to lines and columns.

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Place {
    /// The place of byte `offset` in `text` (clamped to its end).
    pub(crate) fn of(text: &str, offset: usize) -> Place {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Place { line, column: before[line_start..].chars().count() + 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "ab\nçd\n";
        assert_eq!(Place::of(text, 0), Place { line: 1, column: 1 });
        assert_eq!(Place::of(text, 3), Place { line: 2, column: 1 });
        // 'd' follows the two-byte 'ç': column 2, byte offset 5.
        assert_eq!(Place::of(text, 5), Place { line: 2, column: 2 });
        assert_eq!(Place::of(text, 999), Place { line: 3, column: 1 });
    }
}
