//! Escaping for every place a value from a history or a node lands: HTML text and
//! attributes, JSON inside a `<script>` element, XML, URL paths and the terminal.

use std::fmt::Write;

/// Characters that reorder the text around them (Unicode bidi embeddings, overrides,
/// isolates and marks): a key holding U+202E shows another key's text reversed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// How an escaped character is shown: its code point, as Rust writes it (`\u{1b}`).
fn visible(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

/// Text for a terminal: control characters (ANSI escape sequences, carriage returns,
/// backspaces, C1 controls) and bidi controls are shown as `\u{..}`, so a value from a
/// history cannot move the cursor, clear the screen or reorder what is printed. Newlines
/// and tabs are kept: they are the output's own layout.
pub fn terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => visible(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_bidi_control(c) => visible(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Serialises a value as JSON that can sit inside `<script type="application/json">`:
/// `<`, `>` and `&` become `\u003c` etc., so no value can close the element or open a
/// comment, and U+2028/U+2029 are escaped for old JavaScript parsers. Bidi controls
/// become the visible text `\u{202e}`: the page shows values, and a shown value must not
/// reorder its neighbours.
pub fn json_for_script<T: serde::Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("serialising plain data cannot fail");
    escape_script_json(&text)
}

/// The escaping of [`json_for_script`] applied to JSON text already serialised. Valid JSON
/// has these characters only inside strings, where the escapes mean the same.
pub fn escape_script_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            // Inside a JSON string: an escaped backslash, then the code point as text.
            c if is_bidi_control(c) => {
                out.push('\\');
                visible(&mut out, c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for XML content and attributes, dropping characters XML 1.0 forbids
/// (most control characters), which a history's error strings may carry.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes each segment of a relative path for an `href`.
pub fn url_path(segments: &[&str]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b':')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'\\')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'\'');
    segments
        .iter()
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_payloads_become_text() {
        assert_eq!(
            html(r#"<script>alert("1")</script>&'"#),
            "&lt;script&gt;alert(&quot;1&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn script_json_cannot_close_its_element_and_round_trips() {
        let v = serde_json::json!({"v": "</script><!-- & \u{2028}"});
        let text = json_for_script(&v);
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    #[test]
    fn terminal_text_cannot_move_the_cursor_or_reorder_itself() {
        assert_eq!(
            terminal("a\u{1b}[2J\rb\u{7f}\u{9b}\u{202e}c\td\n"),
            "a\\u{1b}[2J\\u{d}b\\u{7f}\\u{9b}\\u{202e}c\td\n"
        );
    }

    #[test]
    fn bidi_controls_are_shown_not_obeyed_in_html_and_script_json() {
        assert_eq!(html("x\u{202e}y\u{2066}"), "x\\u{202e}y\\u{2066}");
        let v = serde_json::json!({"k": "a\u{202e}b"});
        let text = json_for_script(&v);
        assert!(!text.contains('\u{202e}'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["k"], "a\\u{202e}b");
    }

    #[test]
    fn xml_drops_forbidden_characters() {
        assert_eq!(xml("a\u{1}<b>\n"), "a&lt;b&gt;&#10;");
    }

    #[test]
    fn url_segments_cannot_escape_their_place() {
        assert_eq!(
            url_path(&["nodes", "n1", "a b#?.log"]),
            "nodes/n1/a%20b%23%3F.log"
        );
        assert_eq!(url_path(&["x/../y"]), "x%2F..%2Fy");
        assert_eq!(url_path(&["javascript:alert(1)"]), "javascript%3Aalert(1)");
    }
}
