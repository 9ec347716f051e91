//! Planning the change that turns password logins off (pure, unit-tested here): where to
//! write (a drop-in that sorts first in the first `Include` directory, else the main file) and
//! what, the `Match` blocks edited in place, and reading `sshd -T` and `ss` output.

use super::sshd_config::{keyword, SSHDIR};

/// Keys we manage, lower-case as `sshd -T` prints them.
pub(crate) const KEYS: [&str; 3] = [
    "passwordauthentication",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
];
/// Name of our drop-in (must sort before e.g. `50-cloud-init.conf`).
pub(crate) const DROPIN_STEM: &str = "00-dropletguard";
pub(crate) const BEGIN_MARK: &str =
    "# BEGIN dropletguard (password logins disabled; managed block)";
pub(crate) const END_MARK: &str = "# END dropletguard";
pub(crate) const DISABLED_PREFIX: &str = "#dropletguard-disabled# ";

/// Where and what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Write `content` to `path` (a new or replaced drop-in in `dir`).
    DropIn {
        dir: String,
        path: String,
        content: String,
    },
    /// Replace the main config with `content`.
    MainConfig { content: String },
}

/// For one `Include` argument, the directory and the drop-in file name we
/// would use, if the argument is a glob over a plain directory that our
/// name matches.
pub(crate) fn dropin_target(arg: &str) -> Option<(String, String)> {
    let arg = arg.trim_matches('"');
    let abs = if arg.starts_with('/') {
        arg.to_string()
    } else {
        format!("{SSHDIR}/{arg}")
    };
    let (dir, pattern) = abs.rsplit_once('/')?;
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    if dir.is_empty() || is_glob(dir) || !is_glob(pattern) || pattern.contains(['[', '{']) {
        return None;
    }
    // Prefer a name with the pattern's own suffix, e.g. `*.conf` → `.conf`.
    let suffix = pattern.rsplit('*').next().unwrap_or("");
    let candidates = [
        format!("{DROPIN_STEM}{suffix}"),
        format!("{DROPIN_STEM}.conf"),
        DROPIN_STEM.to_string(),
    ];
    candidates
        .into_iter()
        .find(|c| !is_glob(c) && glob::Pattern::new(pattern).is_ok_and(|p| p.matches(c)))
        .map(|name| (dir.to_string(), name))
}

pub(crate) fn our_directives(with_challenge: bool) -> String {
    let mut s = String::from("PasswordAuthentication no\nKbdInteractiveAuthentication no\n");
    if with_challenge {
        s.push_str("ChallengeResponseAuthentication no\n");
    }
    s
}

pub(crate) fn dropin_content(with_challenge: bool) -> String {
    format!(
        "# Managed by dropletguard: password and keyboard-interactive logins are disabled.\n\
         # sshd uses the FIRST value it reads, so this file must sort first in its directory.\n\
         {}",
        our_directives(with_challenge)
    )
}

/// Rewrite the main config: drop an old dropletguard block, comment out every
/// line setting one of our keys outside `Match` blocks, turn them off inside
/// `Match` blocks ([`disable_in_match_blocks`]), and insert our block before
/// the first non-comment line (so before any `Include` or `Match`).
pub(crate) fn edit_main_config(text: &str, with_challenge: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_block = false;
    let mut in_match = false;
    let mut just_closed = false;
    for line in text.lines() {
        if line.trim() == BEGIN_MARK {
            in_block = true;
            continue;
        }
        if in_block {
            if line.trim() == END_MARK {
                in_block = false;
                just_closed = true;
            }
            continue;
        }
        // Drop the blank separator line we put after our block.
        if std::mem::take(&mut just_closed) && line.trim().is_empty() {
            continue;
        }
        match keyword(line) {
            Some((kw, _)) if kw == "match" => {
                in_match = true;
                out.push(line.to_string());
            }
            Some((kw, _)) if !in_match && KEYS.contains(&kw.as_str()) => {
                out.push(format!("{DISABLED_PREFIX}{line}"));
            }
            _ => out.push(line.to_string()),
        }
    }
    let insert_at = out
        .iter()
        .position(|l| keyword(l).is_some())
        .unwrap_or(out.len());
    let mut block = vec![BEGIN_MARK.to_string()];
    block.extend(our_directives(with_challenge).lines().map(str::to_string));
    block.push(END_MARK.to_string());
    block.push(String::new());
    out.splice(insert_at..insert_at, block);
    let mut s = out.join("\n");
    s.push('\n');
    disable_in_match_blocks(&s)
}

/// Decide between a drop-in and editing the main file. The first line that
/// matters decides: a usable globbing `Include` → drop-in; one of our keys,
/// a `Match`, or an `Include` we cannot use → main config.
pub(crate) fn plan(main_text: &str, with_challenge: bool) -> Plan {
    for line in main_text.lines() {
        let Some((kw, rest)) = keyword(line) else {
            continue;
        };
        if kw == "include" {
            if let Some((dir, name)) = rest.split_whitespace().find_map(dropin_target) {
                return Plan::DropIn {
                    path: format!("{dir}/{name}"),
                    dir,
                    content: dropin_content(with_challenge),
                };
            }
            break;
        }
        if kw == "match" || KEYS.contains(&kw.as_str()) {
            break;
        }
    }
    Plan::MainConfig {
        content: edit_main_config(main_text, with_challenge),
    }
}

/// Inside `Match` blocks (from a `Match` line to the next or to the end of the file), each
/// line that turns one of our keys on is commented out and followed by the same key set to
/// `no`, with the same indentation. Lines outside blocks, and `no` lines, are kept. Idempotent.
pub(crate) fn disable_in_match_blocks(text: &str) -> String {
    let mut in_match = false;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        match keyword(line) {
            Some((kw, _)) if kw == "match" => in_match = true,
            Some((kw, value))
                if in_match && KEYS.contains(&kw.as_str()) && !value.eq_ignore_ascii_case("no") =>
            {
                let indent = &line[..line.len() - line.trim_start().len()];
                let name = line
                    .trim_start()
                    .split([' ', '\t', '='])
                    .next()
                    .unwrap_or(&kw);
                out.push_str(&format!("{DISABLED_PREFIX}{line}\n{indent}{name} no\n"));
                continue;
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    if !text.ends_with('\n') && !text.is_empty() {
        out.pop();
    }
    out
}

/// Our keys' lines from `sshd -T` output.
pub(crate) fn effective_lines(sshd_t: &str) -> Vec<String> {
    sshd_t
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|k| KEYS.contains(&k))
        })
        .map(str::to_string)
        .collect()
}

/// True if every one of our keys present says `no` (and the first two exist).
pub(crate) fn all_disabled(lines: &[String]) -> bool {
    let has = |k: &str| lines.iter().any(|l| l.starts_with(&format!("{k} ")));
    has(KEYS[0]) && has(KEYS[1]) && lines.iter().all(|l| l.ends_with(" no"))
}

/// PIDs of `sshd` processes in `ss -H -tlpn` output
/// (`users:(("sshd",pid=123,fd=3),("systemd",pid=1,fd=40))`). Never pid 1.
pub(crate) fn sshd_pids_from_ss(ss: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in ss.split("((").skip(1).flat_map(|s| s.split("),(")) {
        let mut parts = entry.split(',');
        let name = parts.next().unwrap_or("").trim_matches('"');
        let pid = parts
            .find_map(|p| p.strip_prefix("pid="))
            .and_then(|p| p.trim_end_matches(')').parse::<u32>().ok());
        if let Some(pid) = pid {
            if (name == "sshd" || name.starts_with("sshd:")) && pid > 1 && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_first_gives_dropin_matching_glob() {
        let cfg = "# header\nInclude /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n";
        match plan(cfg, false) {
            Plan::DropIn { dir, path, content } => {
                assert_eq!(dir, "/etc/ssh/sshd_config.d");
                assert_eq!(path, "/etc/ssh/sshd_config.d/00-dropletguard.conf");
                assert!(content.contains("PasswordAuthentication no\n"));
                assert!(content.contains("KbdInteractiveAuthentication no\n"));
                assert!(!content.contains("ChallengeResponse"));
            }
            other => panic!("expected drop-in, got {other:?}"),
        }
    }

    #[test]
    fn relative_and_odd_includes() {
        assert_eq!(
            dropin_target("sshd_config.d/*.conf"),
            Some((
                "/etc/ssh/sshd_config.d".into(),
                "00-dropletguard.conf".into()
            ))
        );
        assert_eq!(
            dropin_target("\"/x/y/*\""),
            Some(("/x/y".into(), "00-dropletguard".into()))
        );
        assert_eq!(
            dropin_target("/x/y/*.cfg"),
            Some(("/x/y".into(), "00-dropletguard.cfg".into()))
        );
        assert_eq!(dropin_target("/x/y/only.conf"), None);
        assert_eq!(dropin_target("/x/*/a.conf"), None);
        assert_eq!(dropin_target("/x/y/[ab]*.conf"), None);
    }

    #[test]
    fn setting_before_include_edits_main_config() {
        let cfg = "Port 22\nPasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\n\
                   Match User bob\n  PasswordAuthentication yes\n";
        let Plan::MainConfig { content } = plan(cfg, true) else {
            panic!("expected main-config");
        };
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(lines[0], BEGIN_MARK);
        assert_eq!(lines[1], "PasswordAuthentication no");
        assert_eq!(lines[2], "KbdInteractiveAuthentication no");
        assert_eq!(lines[3], "ChallengeResponseAuthentication no");
        assert_eq!(lines[4], END_MARK);
        assert!(content.contains("#dropletguard-disabled# PasswordAuthentication yes\n"));
        assert!(content.contains("#dropletguard-disabled#   PasswordAuthentication yes\n"));
        assert!(content.contains("Match User bob\n"));
        // Idempotent.
        assert_eq!(edit_main_config(&content, true), content);
    }

    #[test]
    fn match_before_include_and_equals_syntax() {
        let cfg = "Match User x\nInclude /d/*.conf\n";
        assert!(matches!(plan(cfg, false), Plan::MainConfig { .. }));
        let cfg = "include=/d/*.conf\n";
        assert!(matches!(plan(cfg, false), Plan::DropIn { .. }));
        let cfg = "KbdInteractiveAuthentication=no\nInclude /d/*.conf\n";
        let Plan::MainConfig { content } = plan(cfg, false) else {
            panic!("expected main-config")
        };
        assert!(content.contains("#dropletguard-disabled# KbdInteractiveAuthentication=no"));
    }

    #[test]
    fn header_comments_stay_on_top() {
        let out = edit_main_config("# a\n\n# b\nPort 22\n", false);
        assert!(
            out.starts_with(&format!("# a\n\n# b\n{BEGIN_MARK}\n")),
            "{out}"
        );
        assert!(out.ends_with("Port 22\n"));
    }

    #[test]
    fn ss_parsing_only_sshd_never_pid1() {
        let ss = "LISTEN 0 128 127.0.0.1:2222 0.0.0.0:* users:((\"sshd\",pid=4242,fd=3),(\"systemd\",pid=1,fd=44))\n\
                  LISTEN 0 128 [::]:2222 [::]:* users:((\"sshd\",pid=4242,fd=4))\n";
        assert_eq!(sshd_pids_from_ss(ss), vec![4242]);
        assert!(
            sshd_pids_from_ss("LISTEN 0 4096 *:22 *:* users:((\"systemd\",pid=1,fd=50))")
                .is_empty()
        );
        assert!(sshd_pids_from_ss("").is_empty());
    }

    #[test]
    fn effective_and_disabled() {
        let dump = "port 22\npasswordauthentication no\nkbdinteractiveauthentication no\npubkeyauthentication yes\n";
        let lines = effective_lines(dump);
        assert_eq!(
            lines,
            vec![
                "passwordauthentication no",
                "kbdinteractiveauthentication no"
            ]
        );
        assert!(all_disabled(&lines));
        assert!(!all_disabled(&effective_lines(
            "passwordauthentication no\nkbdinteractiveauthentication yes\n"
        )));
        assert!(!all_disabled(&effective_lines(
            "passwordauthentication no\n"
        )));
    }

    #[test]
    fn match_blocks_are_turned_off_inside() {
        let text =
            "PasswordAuthentication yes\nMatch Address 10.0.0.0/8\n  PasswordAuthentication yes\n\
                    \tKbdInteractiveAuthentication=yes\n  PasswordAuthentication no\nMatch all";
        let out = disable_in_match_blocks(text);
        assert_eq!(
            out,
            "PasswordAuthentication yes\nMatch Address 10.0.0.0/8\n\
             #dropletguard-disabled#   PasswordAuthentication yes\n  PasswordAuthentication no\n\
             #dropletguard-disabled# \tKbdInteractiveAuthentication=yes\n\tKbdInteractiveAuthentication no\n\
             \x20 PasswordAuthentication no\nMatch all"
        );
        assert_eq!(disable_in_match_blocks(&out), out, "idempotent");
        assert_eq!(disable_in_match_blocks("Port 22\n"), "Port 22\n");
    }

    #[test]
    fn the_drop_in_name_matches_the_include_glob() {
        let target = |arg: &str| dropin_target(arg).map(|(d, n)| format!("{d}/{n}"));
        assert_eq!(
            target("sshd_config.d/*.conf").as_deref(),
            Some("/etc/ssh/sshd_config.d/00-dropletguard.conf")
        );
        assert_eq!(
            target("/etc/ssh/conf.d/0?-*").as_deref(),
            Some("/etc/ssh/conf.d/00-dropletguard")
        );
        // A backup name never matches `*.conf`'s suffix rule; a glob in the directory is refused.
        assert_eq!(target("/etc/ssh/*/x.conf"), None);
        assert_eq!(target("/etc/ssh/sshd_config.d/plain.conf"), None);
    }
}
