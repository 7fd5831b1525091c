//! A client of the control plane's access API (`/v1/access/*`) for the tests and the bench:
//! one call as the holder of a token, answered with the status and the JSON body.

use serde_json::Value;

/// `method path` on the access API at `base` (`http://127.0.0.1:PORT`) with `Authorization:
/// Bearer token`, and `body` as JSON when given. A 4xx or 5xx is an answer, not an error;
/// only a call that got no answer is `Err`. Timeouts are the agent's.
pub fn call(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let request = agent
        .request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(format!("{method} {path}: {error}")),
    };
    let status = response.status();
    Ok((status, response.into_json().unwrap_or(Value::Null)))
}
