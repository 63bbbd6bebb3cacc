//! POSIX shell quoting for every argument faultline sends to a remote shell.

/// Quotes `arg` so that a POSIX shell (sh, dash, bash, zsh) reads it back as exactly one word
/// with exactly these bytes, whatever it contains (quotes, `;`, `$()`, backticks, newlines).
///
/// Words made only of characters no shell treats specially are left bare so that logged
/// command lines stay readable; everything else is wrapped in single quotes, inside which a
/// shell interprets nothing, and each `'` becomes `'\''` (close, escaped quote, reopen).
pub fn shell_escape(arg: &str) -> String {
    let bare = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:,+@%".contains(&b));
    if bare {
        return arg.to_string();
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// Joins `argv` into one command line, each word escaped with [`shell_escape`].
pub fn shell_join(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| shell_escape(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Every case goes through a real `sh`: the quoted word must come back byte for byte.
    #[test]
    fn round_trips_through_sh() {
        let cases = [
            "",
            "plain",
            "two words",
            "it's",
            "'",
            "''",
            "a\"b",
            "$(touch /nonexistent/x)",
            "`id`",
            "a;b&&c||d|e",
            "line1\nline2\n",
            "~root",
            "#comment",
            "x=y",
            "*",
            "back\\slash",
            "tab\there",
            "ünïcødé",
        ];
        for case in cases {
            let line = format!("printf %s {}", shell_escape(case));
            let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
            assert!(out.status.success(), "sh failed on {line:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                case,
                "line {line:?}"
            );
        }
    }

    #[test]
    fn bare_words_stay_readable_and_specials_are_quoted() {
        assert_eq!(shell_escape("/opt/faultline/bin"), "/opt/faultline/bin");
        assert_eq!(shell_escape("x=y"), "'x=y'");
        assert_eq!(shell_escape(""), "''");
        assert_eq!(shell_escape("it's"), "'it'\\''s'");
        assert_eq!(shell_join(&["echo", "a b", "c"]), "echo 'a b' c");
    }
}
