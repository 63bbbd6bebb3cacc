//! Host specifications: what the controller needs to reach one host, and the nodes-file format.

use anyhow::{bail, Context};
use std::path::Path;

/// The SSH port used when a host names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// One host as the controller reaches it: `name` is how faultline refers to it (`n1`, and
/// the host's hostname on local hosts), `address` is where SSH connects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawHostSpec")]
pub struct HostSpec {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// A host as written in test.json, checked like a typed one before it is used (a replayed
/// test.json is as untrusted as a nodes file).
#[derive(serde::Deserialize)]
struct RawHostSpec {
    name: String,
    address: String,
    port: u16,
}

impl TryFrom<RawHostSpec> for HostSpec {
    type Error = anyhow::Error;

    fn try_from(raw: RawHostSpec) -> anyhow::Result<HostSpec> {
        check_name(&raw.name)?;
        check_address(&raw.address)?;
        Ok(HostSpec {
            name: raw.name,
            address: raw.address,
            port: raw.port,
        })
    }
}

/// A host's name becomes a folder of the run (`nodes/<name>/`) and a word of remote command
/// lines, so it is one plain path segment: letters, digits, `.`, `_`, `-` and `:` (an IPv6
/// address is its own name), not starting with `.` or `-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if name.is_empty() || name.len() > 253 || !plain || name.starts_with(['.', '-']) {
        bail!(
            "bad host name {:?}: use letters, digits, '.', '_', '-' and ':', not starting with '.' or '-'",
            name.escape_debug().to_string()
        );
    }
    Ok(())
}

/// An address reaches ssh's argument list: a leading `-` would be read as an option, so
/// only host-name and IP-address characters are allowed.
fn check_address(address: &str) -> anyhow::Result<()> {
    let plain = address
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '%'));
    if address.is_empty() || address.len() > 253 || !plain || address.starts_with('-') {
        bail!(
            "bad host address {:?}: expected a host name or an IP address",
            address.escape_debug().to_string()
        );
    }
    Ok(())
}

impl HostSpec {
    /// Parses one host as written on the command line or in a nodes file: `address`,
    /// `address:port`, `[v6-address]:port`, or `name=address[:port]`. Without a name the
    /// address is the name, as in Jepsen's `--nodes`.
    pub fn parse(text: &str, default_port: u16) -> anyhow::Result<HostSpec> {
        let text = text.trim();
        let (name, target) = match text.split_once('=') {
            Some((name, target)) => (Some(name.trim()), target.trim()),
            None => (None, text),
        };
        let (address, port) = split_port(target, default_port)?;
        if address.is_empty() || address.chars().any(|c| c.is_whitespace()) {
            bail!("bad host {text:?}: expected address, address:port or name=address[:port]");
        }
        let name = match name {
            Some("") => bail!("bad host {text:?}: empty name before '='"),
            Some(n) => n.to_string(),
            None => address.clone(),
        };
        check_name(&name)?;
        check_address(&address)?;
        Ok(HostSpec {
            name,
            address,
            port,
        })
    }
}

fn split_port(target: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let parse_port = |p: &str| -> anyhow::Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .with_context(|| format!("bad port {p:?} in host {target:?}"))
    };
    if let Some(rest) = target.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            bail!("bad host {target:?}: '[' without ']'");
        };
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => bail!("bad host {target:?}: unexpected {after:?} after ']'"),
        };
        return Ok((addr.to_string(), port));
    }
    // More than one ':' is a bare IPv6 address, which cannot carry a port without brackets.
    match target.split_once(':') {
        Some((addr, p)) if !p.contains(':') => Ok((addr.to_string(), parse_port(p)?)),
        _ => Ok((target.to_string(), default_port)),
    }
}

/// Reads a nodes file: one host per line, either `name address[:port]` or just
/// `address[:port]`; blank lines and everything after `#` are ignored. Hosts without a port
/// use port 22. Errors name the file and line.
pub fn read_nodes_file(path: &Path) -> anyhow::Result<Vec<HostSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read nodes file {}", path.display()))?;
    parse_nodes_file(&text, DEFAULT_SSH_PORT)
        .with_context(|| format!("in nodes file {}", path.display()))
}

/// Parses nodes-file text (see [`read_nodes_file`]) with `default_port` for hosts without one.
pub fn parse_nodes_file(text: &str, default_port: u16) -> anyhow::Result<Vec<HostSpec>> {
    let mut hosts: Vec<HostSpec> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let spec = match words.as_slice() {
            [addr] => HostSpec::parse(addr, default_port),
            [name, addr] if !addr.contains('=') && !name.contains('=') => {
                HostSpec::parse(addr, default_port).and_then(|h| {
                    check_name(name)?;
                    Ok(HostSpec {
                        name: name.to_string(),
                        ..h
                    })
                })
            }
            _ => Err(anyhow::anyhow!(
                "expected `name address[:port]` or `address[:port]`, got {line:?}"
            )),
        }
        .with_context(|| format!("line {}", i + 1))?;
        if hosts.iter().any(|h| h.name == spec.name) {
            bail!("line {}: host name {:?} appears twice", i + 1, spec.name);
        }
        hosts.push(spec);
    }
    if hosts.is_empty() {
        bail!("no hosts listed");
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, address: &str, port: u16) -> HostSpec {
        HostSpec {
            name: name.into(),
            address: address.into(),
            port,
        }
    }

    #[test]
    fn parses_host_forms() {
        let table = [
            ("10.0.0.1", h("10.0.0.1", "10.0.0.1", 22)),
            ("10.0.0.1:2222", h("10.0.0.1", "10.0.0.1", 2222)),
            ("n1=10.0.0.1", h("n1", "10.0.0.1", 22)),
            ("n1=vm1.example:2200", h("n1", "vm1.example", 2200)),
            ("[::1]:2201", h("::1", "::1", 2201)),
            ("fe80::1", h("fe80::1", "fe80::1", 22)),
        ];
        for (text, want) in table {
            assert_eq!(HostSpec::parse(text, 22).unwrap(), want, "{text}");
        }
        for bad in [
            "",
            "n1=",
            "=10.0.0.1",
            "a:0",
            "a:99999",
            "a:x",
            "[::1",
            "a b",
        ] {
            assert!(HostSpec::parse(bad, 22).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn parses_nodes_file_with_comments_and_names_errors_by_line() {
        let text =
            "# test VMs\n\nn1 192.168.56.11\nn2 192.168.56.12:2222  # second\n192.168.56.13\n";
        let hosts = parse_nodes_file(text, 22).unwrap();
        assert_eq!(
            hosts,
            vec![
                h("n1", "192.168.56.11", 22),
                h("n2", "192.168.56.12", 2222),
                h("192.168.56.13", "192.168.56.13", 22),
            ]
        );
        let err = parse_nodes_file("n1 a\nn2 b c\n", 22).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let err = parse_nodes_file("n1 a\nn1 b\n", 22).unwrap_err();
        assert!(format!("{err:#}").contains("twice"), "{err:#}");
        assert!(parse_nodes_file("# nothing\n", 22).is_err());
    }

    #[test]
    fn host_names_that_are_paths_and_addresses_that_are_options_are_refused() {
        // A name becomes a folder of the run (nodes/<name>/); an address reaches ssh's argv.
        for bad in [
            "../../x 10.0.0.1",
            "/etc/cron.d 10.0.0.1",
            ".. 10.0.0.1",
            ". 10.0.0.1",
            "a/b 10.0.0.1",
            "n1 -oProxyCommand=x",
            "-oProxyCommand=x",
            "n1 10.0.0.1\x1b[2J",
        ] {
            let err = parse_nodes_file(bad, 22).expect_err(bad);
            assert!(format!("{err:#}").contains("line 1"), "{bad:?}: {err:#}");
        }
        for bad in [
            "../x=10.0.0.1",
            "n1=-oProxyCommand=x",
            "-p=10.0.0.1",
            "[-x]:22",
        ] {
            assert!(HostSpec::parse(bad, 22).is_err(), "{bad:?} should fail");
        }
        let json = r#"{"name":"../../x","address":"10.0.0.1","port":22}"#;
        assert!(serde_json::from_str::<HostSpec>(json).is_err());
        let ok = r#"{"name":"vm-1.a_b","address":"fe80::1","port":22}"#;
        assert_eq!(
            serde_json::from_str::<HostSpec>(ok).unwrap(),
            h("vm-1.a_b", "fe80::1", 22)
        );
    }
}
