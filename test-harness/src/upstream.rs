//! Upstream stubs shaped like the tools meshgate guards (Airflow, Airbyte, Buildkite and a
//! FastAPI-style service). Each answer echoes the request as the upstream saw it, so tests can
//! check which identity headers the filter injected and which it stripped.

use serde_json::{json, Map, Value};

use crate::ports::{discard_body, json_response, Bound, HarnessError, Listener};

/// The upstream stubs; stop when dropped.
pub struct UpstreamServer {
    listener: Listener,
}

impl UpstreamServer {
    /// Listens on `bind` (a loopback `ip:port`, port 0 for any).
    pub fn start(bind: &str) -> Result<UpstreamServer, HarnessError> {
        let listener = Bound::new(bind)?.serve("upstream", handle)?;
        Ok(UpstreamServer { listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.listener.url()
    }

    pub fn stop(&mut self) {
        self.listener.stop();
    }
}

/// One stubbed endpoint: `{name}` segments of the template match any one non-empty segment.
struct Route {
    tool: &'static str,
    methods: &'static [&'static str],
    template: &'static str,
    body: fn(&Captures, &str) -> Value,
}

/// Template variables captured from the path, in order.
struct Captures(Vec<(&'static str, String)>);

impl Captures {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

const ROUTES: &[Route] = &[
    Route {
        tool: "airflow",
        methods: &["GET"],
        template: "/api/v1/dags",
        body: airflow_dags,
    },
    Route {
        tool: "airflow",
        methods: &["GET", "POST"],
        template: "/api/v1/dags/{dag_id}/dagRuns",
        body: airflow_dag_runs,
    },
    Route {
        tool: "airbyte",
        methods: &["POST"],
        template: "/api/v1/connections/list",
        body: airbyte_connections,
    },
    Route {
        tool: "airbyte",
        methods: &["POST"],
        template: "/api/v1/connections/sync",
        body: airbyte_sync,
    },
    Route {
        tool: "buildkite",
        methods: &["GET", "POST"],
        template: "/v2/organizations/{org}/pipelines/{pipeline}/builds",
        body: buildkite_builds,
    },
    Route {
        tool: "fastapi",
        methods: &["GET"],
        template: "/items/{id}",
        body: fastapi_item,
    },
    Route {
        tool: "fastapi",
        methods: &["GET"],
        template: "/health",
        body: fastapi_health,
    },
];

fn handle(mut request: tiny_http::Request) {
    discard_body(&mut request);
    let method = request.method().as_str().to_owned();
    let raw_path = request.url().to_owned();
    let path = raw_path
        .split_once('?')
        .map_or(raw_path.as_str(), |(path, _)| path);
    let matched = ROUTES.iter().find_map(|route| {
        let captures = match_template(route.template, path)?;
        route
            .methods
            .contains(&method.as_str())
            .then_some((route, captures))
    });
    let (status, tool, template, body) = match matched {
        Some((route, captures)) => (
            200,
            Value::from(route.tool),
            Value::from(route.template),
            (route.body)(&captures, &method),
        ),
        None => (
            404,
            Value::Null,
            Value::Null,
            json!({ "detail": "Not Found" }),
        ),
    };
    let echo = json!({
        "tool": tool,
        "route": template,
        "method": method,
        "path": raw_path,
        "headers": echo_headers(request.headers()),
        "body": body,
    });
    // The client may have gone away; there is nobody left to tell.
    let _ = request.respond(json_response(status, &echo, None));
}

/// Lowercased names; a repeated header's values joined with `", "` in arrival order.
fn echo_headers(headers: &[tiny_http::Header]) -> Value {
    let mut echoed = Map::new();
    for header in headers {
        let name = header.field.to_string().to_ascii_lowercase();
        let value = header.value.to_string();
        let joined = match echoed.remove(&name) {
            Some(Value::String(earlier)) => format!("{earlier}, {value}"),
            _ => value,
        };
        echoed.insert(name, Value::String(joined));
    }
    Value::Object(echoed)
}

fn match_template(template: &'static str, path: &str) -> Option<Captures> {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    let mut captures = Vec::new();
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(Captures(captures)),
            (Some(want), Some(seg)) => {
                match want
                    .strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix('}'))
                {
                    Some(name) if !seg.is_empty() => captures.push((name, seg.to_owned())),
                    None if want == seg => {}
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

fn airflow_dags(_: &Captures, _: &str) -> Value {
    json!({
        "dags": [{
            "dag_id": "etl_daily",
            "description": "Daily warehouse load",
            "is_paused": false,
            "owners": ["data-platform"],
            "tags": [{ "name": "etl" }],
        }],
        "total_entries": 1,
    })
}

fn airflow_dag_runs(captures: &Captures, method: &str) -> Value {
    let dag_id = captures.get("dag_id");
    if method == "POST" {
        return json!({
            "dag_id": dag_id,
            "dag_run_id": "manual__2024-01-01T00:00:00+00:00",
            "state": "queued",
            "conf": {},
        });
    }
    json!({
        "dag_runs": [{
            "dag_id": dag_id,
            "dag_run_id": "scheduled__2024-01-01T00:00:00+00:00",
            "state": "success",
        }],
        "total_entries": 1,
    })
}

fn airbyte_connections(_: &Captures, _: &str) -> Value {
    json!({
        "connections": [{
            "connectionId": "9f1c0a7e-0000-4000-8000-000000000001",
            "name": "postgres → warehouse",
            "status": "active",
        }],
    })
}

fn airbyte_sync(_: &Captures, _: &str) -> Value {
    json!({ "job": { "id": 1, "configType": "sync", "status": "running" } })
}

fn buildkite_builds(captures: &Captures, method: &str) -> Value {
    let build = |number: u32, state: &str| {
        json!({
            "number": number,
            "state": state,
            "branch": "main",
            "pipeline": {
                "slug": captures.get("pipeline"),
                "organization": captures.get("org"),
            },
        })
    };
    if method == "POST" {
        return build(2, "scheduled");
    }
    Value::Array(vec![build(1, "passed")])
}

fn fastapi_item(captures: &Captures, _: &str) -> Value {
    let id = captures.get("id");
    // FastAPI would coerce a numeric path parameter; mirror that so ids look natural.
    let id_value = id
        .parse::<i64>()
        .map_or_else(|_| Value::from(id), Value::from);
    json!({ "id": id_value, "name": format!("item-{id}") })
}

fn fastapi_health(_: &Captures, _: &str) -> Value {
    json!({ "status": "ok" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_single_segments() {
        let captures = match_template(
            "/v2/organizations/{org}/pipelines/{pipeline}/builds",
            "/v2/organizations/acme/pipelines/web/builds",
        )
        .unwrap();
        assert_eq!(
            (captures.get("org"), captures.get("pipeline")),
            ("acme", "web")
        );
        assert!(match_template("/items/{id}", "/items/").is_none());
        assert!(match_template("/items/{id}", "/items/1/2").is_none());
        assert!(match_template("/health", "/health/").is_none());
        assert!(match_template("/health", "/healthz").is_none());
        assert!(match_template("/health", "/health").is_some());
    }
}
