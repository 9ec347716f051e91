//! Text shown on a terminal. Names, messages and details come from the API or the account and
//! may hold control characters: ESC sequences that clear the screen or set the window title,
//! `\r\n` that starts a forged line. Everything the CLI prints for a person goes through
//! [`printable`]. JSON and SARIF keep the exact strings (JSON escapes them itself).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal raw: C0 controls (newline included), DEL, C1
/// controls, and the bidirectional-text overrides and isolates (which reorder what is shown).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character escaped (`\n`, `\r`, `\t`, else `\u{1b}`): one line of
/// printable text. Borrowed when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Multi-line text with each line made [`printable`]: its own line breaks are kept, any
/// other control character is escaped.
pub fn printable_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s`'s first `n` characters (all of it when shorter), cut on a character boundary.
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// What a file that is not a regular file is, for the error (`a FIFO`, `a device`,
/// `a socket`, `a directory`).
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        let name = "gpu-01\u{1b}[2J\u{1b}]0;title\u{7}\r\n80 Droplets audited\u{9b}x\u{7f}\u{202e}";
        let p = printable(name);
        assert_eq!(
            p,
            "gpu-01\\u{1b}[2J\\u{1b}]0;title\\u{7}\\r\\n80 Droplets audited\\u{9b}x\\u{7f}\\u{202e}"
        );
        assert!(p.chars().all(|c| !is_hidden(c)));
        assert!(matches!(printable("web-01 → ok"), Cow::Borrowed(_)));
        assert_eq!(printable_lines("a\u{1b}\nb\r"), "a\\u{1b}\nb\\r");
    }
}
