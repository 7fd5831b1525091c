//! The access endpoints over HTTP: a request (method, path, query, `Authorization`, body)
//! to a status and a JSON body. Errors are `{"error": {"code": "...", "message": "..."}}`.

use meshgate_core::access::ReviewVerdict;
use serde_json::Value;

use super::err::ApiError;
use super::service::AccessService;

/// The access endpoints live under this prefix.
pub const PREFIX: &str = "/v1/access/";
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route the access API answers, as `(method, OpenAPI path)`; `docs/openapi/access.yaml`
/// lists exactly these (a test checks both ways).
pub const ROUTES: [(&str, &str); 10] = [
    ("post", "/v1/access/requests"),
    ("get", "/v1/access/requests"),
    ("get", "/v1/access/requests/{id}"),
    ("post", "/v1/access/requests/{id}/approve"),
    ("post", "/v1/access/requests/{id}/deny"),
    ("post", "/v1/access/requests/{id}/cancel"),
    ("get", "/v1/access/grants"),
    ("post", "/v1/access/grants/{id}/revoke"),
    ("get", "/v1/access/policy"),
    ("post", "/v1/sync"),
];

/// One access call.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub authorization: Option<&'a str>,
    /// The body, or `None` when it was over [`MAX_BODY_BYTES`].
    pub body: Option<&'a [u8]>,
}

/// Status and JSON body.
pub fn handle(service: Option<&AccessService>, request: &ApiRequest<'_>) -> (u16, Value) {
    let Some(service) = service else {
        return (
            404,
            serde_json::json!({"error": {"code": "not_found",
                "message": "the access API is not configured (no `access:` in the control-plane config)"}}),
        );
    };
    match dispatch(service, request) {
        Ok((status, body)) => (status, body),
        Err(error) => (error.status(), error.body()),
    }
}

fn dispatch(service: &AccessService, request: &ApiRequest<'_>) -> Result<(u16, Value), ApiError> {
    let rest = request.path.strip_prefix(PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let method = request.method;
    let allowed = |methods: &'static str| -> Result<(u16, Value), ApiError> {
        Err(ApiError::MethodNotAllowed { allowed: methods })
    };
    // Which route, before who: an unknown path is 404 for anyone.
    let route = match (parts.as_slice(), method) {
        (["requests"], "POST") => Route::Create,
        (["requests"], "GET") => Route::List,
        (["requests"], _) => return allowed("GET, POST"),
        (["requests", id], "GET") => Route::Get(id),
        (["requests", _], _) => return allowed("GET"),
        (["requests", id, "approve"], "POST") => Route::Review(id, ReviewVerdict::Approve),
        (["requests", id, "deny"], "POST") => Route::Review(id, ReviewVerdict::Deny),
        (["requests", id, "cancel"], "POST") => Route::Cancel(id),
        (["requests", _, "approve" | "deny" | "cancel"], _) => return allowed("POST"),
        (["grants"], "GET") => Route::Grants,
        (["grants"], _) => return allowed("GET"),
        (["grants", id, "revoke"], "POST") => Route::Revoke(id),
        (["grants", _, "revoke"], _) => return allowed("POST"),
        (["policy"], "GET") => Route::Policy,
        (["policy"], _) => return allowed("GET"),
        _ => {
            return Err(ApiError::NotFound {
                what: "endpoint",
                id: request.path.to_owned(),
            })
        }
    };
    let (caller, catalog) = service.caller(request.authorization)?;
    let body = || body_json(request.body);
    Ok(match route {
        Route::Create => (201, service.create(&caller, &catalog, &body()?)?),
        Route::List => (200, service.list(&caller, &catalog, request.query)?),
        Route::Get(id) => (200, service.get(&caller, &catalog, id)?),
        Route::Review(id, verdict) => (
            200,
            service.review(&caller, &catalog, id, verdict, &body()?)?,
        ),
        Route::Cancel(id) => {
            body()?;
            (200, service.cancel(&caller, id)?)
        }
        Route::Grants => (200, service.grants(&caller, &catalog, request.query)?),
        Route::Revoke(id) => (200, service.revoke(&caller, &catalog, id, &body()?)?),
        Route::Policy => (200, service.policy_json()),
    })
}

enum Route<'a> {
    Create,
    List,
    Get(&'a str),
    Review(&'a str, ReviewVerdict),
    Cancel(&'a str),
    Grants,
    Revoke(&'a str),
    Policy,
}

/// The body as JSON: empty is `null`; over the limit, not JSON, or not an object is refused.
fn body_json(body: Option<&[u8]>) -> Result<Value, ApiError> {
    let body = body.ok_or(ApiError::TooLarge {
        max: MAX_BODY_BYTES,
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad("body", "must be a JSON object"));
    }
    Ok(value)
}
