//! `Match` blocks of an sshd configuration, and what each one makes sshd offer.
//!
//! With the management key, the configuration is read (the main file and the files its
//! `Include` lines name, one level deep), every `Match` line is turned into a connection that
//! the block's criteria match (`user=…,host=…,addr=…,laddr=…,lport=…`), and
//! `sshd -T -C <that> -f <main file>` gives the effective settings for it (sshd_config(5),
//! sshd(8) `-C`). A block whose connection gets `passwordauthentication yes` or
//! `kbdinteractiveauthentication yes` where the global settings (`sshd -T` without `-C`, no
//! `Match` applied) say `no` turns passwords on for whoever it matches.

use serde::{Deserialize, Serialize};

use super::client::Session;
use super::remote::{sh_quote, Remote, SSHD};
use super::sshd_config::{keyword, sshd_config_includes};

/// One `Match` block and the methods its connection is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchBlock {
    /// The file holding the block.
    pub file: String,
    /// 1-based line of the `Match` keyword.
    pub line: usize,
    /// The criteria as written after `Match` (`User www-data`).
    pub criteria: String,
    /// The `sshd -T -C` connection spec used (`user=www-data,host=…,addr=…,laddr=…,lport=22`).
    pub spec: String,
    /// `password` and/or `keyboard-interactive` when the effective settings turn them on.
    pub offers: Vec<String>,
}

impl MatchBlock {
    /// `Match User www-data (/etc/ssh/sshd_config:17)`
    pub fn describe(&self) -> String {
        format!("Match {} ({}:{})", self.criteria, self.file, self.line)
    }
}

/// Values for the parts of a connection that a block's criteria do not fix.
#[derive(Debug, Clone)]
pub struct ConnectionDefaults {
    /// The management user.
    pub user: String,
    /// The Droplet's address as the probe reaches it.
    pub laddr: String,
    /// `ssh.port`.
    pub lport: u16,
}

/// A client address no real block is likely to name (TEST-NET-2, RFC 5737).
const DEFAULT_CLIENT_ADDR: &str = "198.51.100.7";
const DEFAULT_CLIENT_HOST: &str = "client.dropletguard.invalid";
/// Picked when every pattern of a criterion is negated (`User !root`).
const UNMATCHED_USER: &str = "dropletguard-nobody";

/// The `Match` lines of one file: (1-based line, criteria text).
pub fn match_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| match keyword(line) {
            Some((kw, rest)) if kw == "match" => Some((n + 1, rest.to_string())),
            _ => None,
        })
        .collect()
}

/// A value a pattern list (`a*,!b,c`) matches: the first pattern that is not negated, with
/// `*` and `?` filled in; `None` when every pattern is negated.
fn pick(patterns: &str, fill: &str) -> Option<String> {
    patterns
        .trim_matches('"')
        .split(',')
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('!'))
        .map(|p| p.replace(['*', '?'], fill))
}

/// An address a `Match Address` list matches: a CIDR's network address, or a pattern with
/// its wildcards filled with `1`.
fn pick_addr(patterns: &str) -> Option<String> {
    let p = pick(patterns, "1")?;
    Some(p.split('/').next().unwrap_or(&p).to_string())
}

/// The `-C` spec for a block's criteria (shell text: a `Group` criterion becomes a member of
/// the group, looked up on the host by `dg_member`). Unknown criteria are left to defaults.
pub fn test_spec(criteria: &str, d: &ConnectionDefaults) -> String {
    let mut user = sh_quote(&d.user);
    let (mut host, mut addr) = (
        DEFAULT_CLIENT_HOST.to_string(),
        DEFAULT_CLIENT_ADDR.to_string(),
    );
    let (mut laddr, mut lport) = (d.laddr.clone(), d.lport.to_string());
    let mut words = criteria.split_whitespace();
    while let Some(kw) = words.next() {
        let kw = kw.to_ascii_lowercase();
        if kw == "all" {
            continue;
        }
        let Some(value) = words.next() else { break };
        match kw.as_str() {
            "user" => user = sh_quote(&pick(value, "x").unwrap_or(UNMATCHED_USER.into())),
            "group" => {
                let group = pick(value, "x").unwrap_or_default();
                user = format!("\"$(dg_member {})\"", sh_quote(&group));
            }
            "host" => host = pick(value, "x").unwrap_or(host),
            "address" => addr = pick_addr(value).unwrap_or(addr),
            "localaddress" => laddr = pick_addr(value).unwrap_or(laddr),
            "localport" => lport = pick(value, "1").unwrap_or(lport),
            _ => {}
        }
    }
    format!(
        "user={user},host={},addr={},laddr={},lport={}",
        sh_quote(&host),
        sh_quote(&addr),
        sh_quote(&laddr),
        sh_quote(&lport)
    )
}

/// The spec as a reader sees it (the shell quoting and look-ups left as written).
fn readable_spec(spec: &str) -> String {
    spec.replace('\'', "")
}

/// What `sshd -T` output offers: `password`, `keyboard-interactive`.
pub fn offers(sshd_t: &str) -> Vec<String> {
    let on = |key: &str| {
        sshd_t
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case(&format!("{key} yes")))
    };
    let mut v = Vec::new();
    if on("passwordauthentication") {
        v.push("password".to_string());
    }
    if on("kbdinteractiveauthentication") {
        v.push("keyboard-interactive".to_string());
    }
    v
}

/// Splits the output of the files dump (`==> path` headers) into (path, text).
fn split_dump(dump: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in dump.lines() {
        if let Some(path) = line.strip_prefix("==> ") {
            files.push((path.to_string(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// A path pattern for the shell to expand like sshd's glob(3): left bare when it holds only
/// path and glob characters, else quoted whole (no expansion, no injection).
fn shell_glob(pattern: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-*?[]".contains(c);
    if pattern.chars().all(plain) {
        pattern.to_string()
    } else {
        sh_quote(pattern)
    }
}

/// Reads the main file and every file its `Include` lines name (a glob each), as
/// (path, text), over `remote`.
pub(crate) async fn read_config_files(
    remote: &Remote<'_>,
    config: &str,
) -> Result<Vec<(String, String)>, String> {
    let main = remote
        .sh_ok(
            "reading the sshd configuration",
            &format!("cat {}", sh_quote(config)),
        )
        .await?;
    let globs = sshd_config_includes(&main);
    let mut files = vec![(config.to_string(), main)];
    if globs.is_empty() {
        return Ok(files);
    }
    let script = format!(
        "for f in {}; do [ -f \"$f\" ] && {{ echo \"==> $f\"; cat \"$f\"; echo; }}; done; true",
        globs
            .iter()
            .map(|g| shell_glob(g))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let dump = remote.sh_ok("reading Include'd files", &script).await?;
    files.extend(split_dump(&dump));
    Ok(files)
}

/// Every `Match` block in the configuration with the methods sshd offers a connection that
/// the block matches. One command lists the files, one runs `sshd -T -C` for every block.
pub async fn read_match_blocks(
    session: &Session,
    config: &str,
    defaults: &ConnectionDefaults,
) -> Result<Vec<MatchBlock>, String> {
    match_blocks_via(&Remote::new(session), config, defaults).await
}

/// [`read_match_blocks`] over a [`Remote`] (as root, through `sudo -n` when needed).
pub(crate) async fn match_blocks_via(
    remote: &Remote<'_>,
    config: &str,
    defaults: &ConnectionDefaults,
) -> Result<Vec<MatchBlock>, String> {
    let files = read_config_files(remote, config).await?;
    let mut blocks: Vec<MatchBlock> = Vec::new();
    for (file, text) in &files {
        for (line, criteria) in match_lines(text) {
            let spec = test_spec(&criteria, defaults);
            let (file, offers) = (file.clone(), Vec::new());
            blocks.push(MatchBlock {
                file,
                line,
                criteria,
                spec,
                offers,
            });
        }
    }
    if blocks.is_empty() {
        return Ok(blocks);
    }
    let (global, dumps) = effective_per_spec(remote, config, &blocks).await?;
    let global = offers(&global);
    for (block, dump) in blocks.iter_mut().zip(dumps) {
        block.offers = offers(&dump?);
        block.offers.retain(|m| !global.contains(m));
        block.spec = readable_spec(&block.spec);
    }
    Ok(blocks)
}

/// Runs `sshd -T` (the global settings, no `Match` applied) and `sshd -T -C <spec>` for each
/// block, in one remote script: the global dump and one result per block.
pub(crate) async fn effective_per_spec(
    remote: &Remote<'_>,
    config: &str,
    blocks: &[MatchBlock],
) -> Result<(String, Vec<Result<String, String>>), String> {
    let mut script = String::from(
        "dg_member() { m=$(getent group \"$1\" | cut -d: -f4 | cut -d, -f1); \
         [ -n \"$m\" ] || m=$(getent passwd | awk -F: -v g=\"$(getent group \"$1\" | cut -d: -f3)\" \
         '$4==g {print $1; exit}'); echo \"$m\"; }\n",
    );
    script.push_str(&format!(
        "echo '==> global'; {SSHD} -T -f {}\n",
        sh_quote(config)
    ));
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!(
            "echo '==> {i}'; {SSHD} -T -C {} -f {} 2>&1 || echo 'dropletguard: sshd -T failed'\n",
            b.spec,
            sh_quote(config)
        ));
    }
    let dump = remote.sh_ok("sshd -T -C per Match block", &script).await?;
    let parts = split_dump(&dump);
    let global = parts
        .iter()
        .find(|(k, _)| k == "global")
        .map(|(_, out)| out.clone())
        .ok_or("sshd -T printed nothing")?;
    let each = blocks
        .iter()
        .enumerate()
        .map(
            |(i, b)| match parts.iter().find(|(k, _)| *k == i.to_string()) {
                Some((_, out)) if !out.contains("dropletguard: sshd -T failed") => Ok(out.clone()),
                Some((_, out)) => Err(format!("{}: sshd -T -C: {}", b.describe(), out.trim())),
                None => Err(format!("{}: no sshd -T output", b.describe())),
            },
        )
        .collect();
    Ok((global, each))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> ConnectionDefaults {
        ConnectionDefaults {
            user: "root".into(),
            laddr: "192.0.2.10".into(),
            lport: 22,
        }
    }

    #[test]
    fn specs_follow_the_criteria() {
        let spec = |c: &str| readable_spec(&test_spec(c, &d()));
        assert_eq!(
            spec("User www-data"),
            "user=www-data,host=client.dropletguard.invalid,addr=198.51.100.7,laddr=192.0.2.10,lport=22"
        );
        assert_eq!(
            spec("Address 10.0.0.0/8 LocalPort 2222"),
            "user=root,host=client.dropletguard.invalid,addr=10.0.0.0,laddr=192.0.2.10,lport=2222"
        );
        assert!(spec("user !root,deploy*").starts_with("user=deployx,"));
        assert!(spec("User !root").starts_with("user=dropletguard-nobody,"));
        assert!(spec("Host *.example.com").contains(",host=x.example.com,"));
        assert!(spec("LocalAddress 192.0.2.*").contains(",laddr=192.0.2.1,"));
        assert!(spec("Group sftp").starts_with("user=\"$(dg_member sftp)\","));
        assert!(spec("All").starts_with("user=root,"));
    }

    #[test]
    fn match_lines_and_offers() {
        let text = "PasswordAuthentication no\n# Match User x\nMatch User www-data\n  \
                    PasswordAuthentication yes\nmatch Address 10.0.0.0/8\n";
        assert_eq!(
            match_lines(text),
            vec![
                (3, "User www-data".to_string()),
                (5, "Address 10.0.0.0/8".to_string())
            ]
        );
        assert_eq!(
            offers("port 22\npasswordauthentication yes\nkbdinteractiveauthentication no\n"),
            vec!["password"]
        );
        assert!(offers("passwordauthentication no\n").is_empty());
    }

    #[test]
    fn include_patterns_reach_the_shell_safely() {
        assert_eq!(
            shell_glob("/etc/ssh/sshd_config.d/*.conf"),
            "/etc/ssh/sshd_config.d/*.conf"
        );
        assert_eq!(shell_glob("/x/$(reboot)*.conf"), "'/x/$(reboot)*.conf'");
        assert_eq!(shell_glob("/x/a b.conf"), "'/x/a b.conf'");
    }

    #[test]
    fn dump_is_split_by_file() {
        let files = split_dump("==> /a.conf\nX 1\n\n==> /b.conf\nY 2\n");
        assert_eq!(files[0], ("/a.conf".into(), "X 1\n\n".into()));
        assert_eq!(files[1], ("/b.conf".into(), "Y 2\n".into()));
    }
}
