//! Reading sshd_config(5) text: keywords and `Include` lines. Pure.

/// Where sshd's configuration lives; relative `Include` arguments are resolved against it.
pub(crate) const SSHDIR: &str = "/etc/ssh";

/// Split a config line into (lower-case keyword, rest). Comments/blank → None.
pub(crate) fn keyword(line: &str) -> Option<(String, &str)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let (kw, rest) = t.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    Some((kw.to_ascii_lowercase(), rest))
}

/// The arguments of every `Include` line of the main file, relative ones resolved against
/// `/etc/ssh` (sshd_config(5)), quotes removed; each may be a glob.
pub(crate) fn sshd_config_includes(main_text: &str) -> Vec<String> {
    main_text
        .lines()
        .filter_map(keyword)
        .filter(|(kw, _)| kw == "include")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|arg| {
            let arg = arg.trim_matches('"');
            if arg.starts_with('/') {
                arg.to_string()
            } else {
                format!("{SSHDIR}/{arg}")
            }
        })
        .collect()
}
