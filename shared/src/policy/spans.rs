//! Where a key is written in the policy text, from the TOML parser's own spans (`toml_edit`
//! keeps them for every key, table and value), so that a validation error can name the line.

use toml_edit::{ImDocument, Item, TableLike};

/// The policy text and its parsed document.
pub(super) struct Spans<'a> {
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Spans<'a> {
    /// `text` parsed; a text that does not parse has no spans (every line is then 1).
    pub fn new(text: &'a str) -> Self {
        Spans {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// The 1-based line that holds byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The 1-based line where the key at `path` is written: table names, an array of tables'
    /// entry by its index (`["exemptions", "2", "reason"]`), then the key. Where the last key
    /// is not written, the line of the nearest table on the path that is. `None` when no part
    /// of the path is in the text.
    pub fn key_line(&self, path: &[&str]) -> Option<usize> {
        self.walk(path).map(|(line, _)| line)
    }

    /// The 1-based line of the key at `path` only when the text writes that very key.
    pub fn exact_line(&self, path: &[&str]) -> Option<usize> {
        self.walk(path)
            .and_then(|(line, whole)| whole.then_some(line))
    }

    /// The line [`Spans::key_line`] names, and whether the whole path was written.
    fn walk(&self, path: &[&str]) -> Option<(usize, bool)> {
        let doc = self.doc.as_ref()?;
        let mut table: &dyn TableLike = doc.as_table();
        let mut found: Option<usize> = None;
        let mut whole = true;
        let mut segments = path.iter();
        while let Some(seg) = segments.next() {
            let Some(item) = table.get(seg) else {
                whole = false;
                break;
            };
            let key_span = table.key(seg).and_then(|k| k.span());
            if let Some(span) = key_span.or_else(|| item.span()) {
                found = Some(span.start);
            }
            table = match item {
                Item::ArrayOfTables(a) => {
                    let Some(entry) = segments
                        .next()
                        .and_then(|i| i.parse::<usize>().ok())
                        .and_then(|i| a.get(i))
                    else {
                        whole = false;
                        break;
                    };
                    found = entry.span().map(|s| s.start).or(found);
                    entry
                }
                other => match other.as_table_like() {
                    Some(t) => t,
                    None => {
                        whole = segments.len() == 0;
                        break;
                    }
                },
            };
        }
        found.map(|offset| (self.line(offset), whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tables_and_array_entries_are_found_on_their_lines() {
        let text = "# a policy\n[ssh]\nport = 22\n\n[rules.\"firewall.missing\"]\nmode = \"enforce\"\n\n\
                    [[exemptions]]\nreason = \"a\"\n[[exemptions]]\nowner = \"b\"\nreason = \"c\"\n";
        let s = Spans::new(text);
        assert_eq!(s.key_line(&["ssh", "port"]), Some(3));
        assert_eq!(
            s.key_line(&["ssh", "probe"]),
            Some(2),
            "unset: its table's line"
        );
        assert_eq!(s.key_line(&["rules", "firewall.missing"]), Some(5));
        assert_eq!(s.key_line(&["rules", "firewall.missing", "mode"]), Some(6));
        assert_eq!(s.key_line(&["exemptions", "1", "reason"]), Some(12));
        assert_eq!(s.key_line(&["exemptions", "1", "tags"]), Some(10));
        assert_eq!(s.key_line(&["exemptions", "0", "reason"]), Some(9));
        assert_eq!(s.key_line(&["api", "reserve_percent"]), None);
        assert_eq!(s.exact_line(&["ssh", "port"]), Some(3));
        assert_eq!(
            s.exact_line(&["ssh", "probe"]),
            None,
            "only a key the text writes"
        );
        assert_eq!(Spans::new("[ssh\nport = ").key_line(&["ssh"]), None);
    }
}
