//! Escaping for every place a value from a history or a node lands: HTML text and
//! attributes, JSON inside a `<script>` element, XML, and URL paths.

use std::fmt::Write;

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
            c => out.push(c),
        }
    }
    out
}

/// Serialises a value as JSON that can sit inside `<script type="application/json">`:
/// `<`, `>` and `&` become `\u003c` etc., so no value can close the element or open a
/// comment, and U+2028/U+2029 are escaped for old JavaScript parsers.
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
