//! The HTTP server of `faultline serve`: the results index and the run folders, read-only,
//! and never a file outside the results folder (no `..`, no symlink out of it).

use crate::escape::{html, url_path};
use crate::index::{update_index, CSP};
use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `faultline serve` listens unless told otherwise: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The router serving a results folder.
pub fn router(results_root: &Path) -> anyhow::Result<Router> {
    let root = results_root
        .canonicalize()
        .with_context(|| format!("cannot open results folder {}", results_root.display()))?;
    Ok(Router::new().fallback(handle).with_state(Arc::new(root)))
}

/// Serves a results folder on a bound listener until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, results_root: &Path) -> anyhow::Result<()> {
    let app = router(results_root)?;
    axum::serve(listener, app)
        .await
        .context("HTTP server failed")
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "css" => "text/css; charset=utf-8",
        "xml" => "application/xml",
        "gz" => "application/gzip",
        // Logs, histories and anything unknown are shown as text, never run.
        _ => "text/plain; charset=utf-8",
    }
}

/// The path segments of a request, decoded, or None when any segment could leave the
/// folder it names.
fn safe_segments(uri_path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in uri_path.split('/') {
        let seg = percent_decode_str(raw).decode_utf8().ok()?;
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".." || seg.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(seg.into_owned());
    }
    Some(out)
}

async fn handle(State(root): State<Arc<PathBuf>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "read-only\n");
    }
    let Some(segments) = safe_segments(uri.path()) else {
        return plain(StatusCode::FORBIDDEN, "outside the results folder\n");
    };
    // Dot-files (`.git`, `.env`) are hidden from listings, so they are not served either;
    // "not found" rather than "forbidden" does not tell a prober that one exists.
    if segments.iter().any(|s| s.starts_with('.')) {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if segments.is_empty() {
        let root = root.as_ref().clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || update_index(&root)).await {
            tracing::warn!("cannot update the results index: {e:#}");
        }
    }
    let wanted = segments
        .iter()
        .fold(root.as_ref().clone(), |p, s| p.join(s));
    let path = match tokio::fs::canonicalize(&wanted).await {
        Ok(p) => p,
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    if !path.starts_with(root.as_ref()) {
        return plain(StatusCode::FORBIDDEN, "outside the results folder\n");
    }
    if path.is_dir() {
        if !uri.path().ends_with('/') {
            // Built from the checked segments, never the raw path: `//name/` would be read
            // by a browser as the host `name`.
            let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
            let to = format!("/{}/", url_path(&refs));
            return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
        }
        let index = path.join("index.html");
        if index.is_file() {
            return file(&index).await;
        }
        return listing(&path, &segments).await;
    }
    file(&path).await
}

async fn file(path: &Path) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(_) => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn listing(dir: &Path, segments: &[String]) -> Response {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let is_dir = tokio::fs::metadata(e.path())
                .await
                .map(|m| m.is_dir())
                .unwrap_or(false);
            names.push((name, is_dir));
        }
    }
    names.sort();
    let title = format!("/{}", segments.join("/"));
    let mut items = String::from("<li><a href=\"../\">../</a></li>");
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        items.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>",
            html(&url_path(&[&name])),
            html(&name)
        ));
    }
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family: sans-serif\"><h1>{t}</h1><ul>{items}</ul></body></html>",
        t = html(&title)
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_segments_are_refused() {
        assert_eq!(safe_segments("/a/./b/"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(safe_segments("/a%20b"), Some(vec!["a b".into()]));
        for bad in [
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/a%2f..%2f..%2fx",
            "/a%5c..",
            "/%00",
        ] {
            assert_eq!(safe_segments(bad), None, "{bad}");
        }
    }
}
