//! The HTTP/JSON client API of `nodes/API.md`: request and answer types, limits, and errors
//! that say whether the operation certainly did not happen.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest key accepted, in bytes.
pub const KEY_BYTES_MAX: usize = 256;
/// Largest value accepted, serialized as JSON, in bytes.
pub const VALUE_BYTES_MAX: usize = 64 * 1024;
/// Largest request body read at all; anything between this and the value limit is answered
/// with our own 400 rather than the framework's 413.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Header set on a request a follower forwards, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-faultline-forwarded";

/// `POST /read`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub key: String,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `POST /write`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteRequest {
    pub key: String,
    pub value: Value,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `POST /cas`; `expected: null` means "the key is absent".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CasRequest {
    pub key: String,
    #[serde(default)]
    pub expected: Value,
    pub new: Value,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Answer to `/read`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReadResponse {
    pub value: Value,
}

/// Answer to `/cas`; `current` is present exactly when `ok` is false.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CasResponse {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
}

/// Answer to `GET /status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub id: String,
    pub role: String,
    pub term: u64,
    pub leader: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub wall_clock_ms: u64,
    pub read_mode: String,
    pub bugs: Vec<String>,
}

/// A non-200 answer: `definite` is true when the operation certainly did not take effect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, thiserror::Error)]
#[error("{status}: {error} (definite: {definite})")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub error: String,
    pub definite: bool,
    pub leader: Option<String>,
}

impl ApiError {
    /// 400: the request itself is wrong; nothing happened.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(400, error, true)
    }

    /// 503 definite: this node cannot serve it and did nothing.
    pub fn unavailable(error: impl Into<String>, leader: Option<String>) -> Self {
        Self {
            leader,
            ..Self::new(503, error, true)
        }
    }

    /// 504: the server-side bound passed; a write may still happen.
    pub fn timeout(definite: bool) -> Self {
        Self::new(504, "request timed out", definite)
    }

    /// Any status with a message.
    pub fn new(status: u16, error: impl Into<String>, definite: bool) -> Self {
        Self {
            status,
            error: error.into(),
            definite,
            leader: None,
        }
    }
}

/// Runs a request's `work` within `limit`; past it, 504 naming the leader that `leader`
/// answers then. `definite` only when the work certainly changed nothing (a read): a request
/// cut off mid-way may still take effect.
pub async fn bounded(
    limit: std::time::Duration,
    definite: bool,
    leader: impl FnOnce() -> Option<String>,
    work: impl std::future::Future<Output = Response>,
) -> Response {
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => ApiError {
            leader: leader(),
            ..ApiError::timeout(definite)
        }
        .into_response(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

/// Parses a JSON request body into `T`, answering 400 with serde's explanation on failure.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

/// Rejects empty and over-long keys.
pub fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("key must not be empty"));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "key is {} bytes, more than the limit of {KEY_BYTES_MAX}",
            key.len()
        )));
    }
    Ok(())
}

/// Serializes a value canonically (object keys sorted), rejecting values over the size limit.
/// Canonical text lets replicas compare values for `cas` as strings.
pub fn encode_value(value: &Value) -> Result<String, ApiError> {
    let text =
        serde_json::to_string(value).map_err(|e| ApiError::bad_request(format!("value: {e}")))?;
    if text.len() > VALUE_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "value is {} bytes serialized, more than the limit of {VALUE_BYTES_MAX}",
            text.len()
        )));
    }
    Ok(text)
}

/// Reverses [`encode_value`]; stored text that does not parse (never expected) reads as null.
pub fn decode_value(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// The answer to a path no handler serves.
pub async fn not_found() -> ApiError {
    ApiError::new(404, "unknown path; see nodes/API.md", true)
}

/// This machine's wall clock in ms since the epoch (faked by libfaketime in clock tests).
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_reject_oversized_keys_and_values() {
        assert!(validate_key("k1").is_ok());
        assert_eq!(validate_key("").unwrap_err().status, 400);
        assert!(validate_key(&"x".repeat(KEY_BYTES_MAX)).is_ok());
        let err = validate_key(&"x".repeat(KEY_BYTES_MAX + 1)).unwrap_err();
        assert!(err.definite && err.status == 400);
        let big = Value::String("y".repeat(VALUE_BYTES_MAX));
        assert!(encode_value(&big).unwrap_err().error.contains("limit"));
        let small = serde_json::json!({"b": 1, "a": [1, 2]});
        assert_eq!(encode_value(&small).unwrap(), r#"{"a":[1,2],"b":1}"#);
    }

    #[test]
    fn malformed_bodies_are_definite_400s() {
        let err = parse_body::<WriteRequest>(b"{\"key\": 3}").unwrap_err();
        assert_eq!((err.status, err.definite), (400, true));
        let ok: CasRequest = parse_body(br#"{"key":"k","new":2}"#).unwrap();
        assert_eq!(ok.expected, Value::Null);
    }

    #[test]
    fn cas_failure_serializes_current_even_when_null() {
        let r = CasResponse {
            ok: false,
            current: Some(Value::Null),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"ok":false,"current":null}"#
        );
        let r = CasResponse {
            ok: true,
            current: None,
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"ok":true}"#);
    }
}
