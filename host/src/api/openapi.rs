//! Routes and their OpenAPI 3.1 description, registered together: a route can only be
//! added with its [`Operation`], so `GET /openapi.json` lists exactly what the router
//! serves. Schemas come from the API types (`trellis-types`) through schemars, the
//! same JSON Schemas the MCP tools use.

use super::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, on};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};
use std::borrow::Cow;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a request body is.
#[derive(Clone, Copy)]
enum Body {
    Json(SchemaFn),
    /// A Wasm component's bytes.
    Wasm,
}

/// One method on one path, as documented.
#[derive(Clone)]
pub struct Operation {
    method: Method,
    path: Cow<'static, str>,
    operation_id: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    body: Option<Body>,
    query: Option<SchemaFn>,
    success: StatusCode,
    response: Option<SchemaFn>,
    /// Error statuses besides those every route of its kind can give.
    errors: &'static [u16],
    auth: bool,
}

impl Operation {
    fn new(method: Method, path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path: Cow::Borrowed(path),
            operation_id,
            summary,
            description: None,
            tag: "operations",
            body: None,
            query: None,
            success: StatusCode::OK,
            response: None,
            errors: &[],
            auth: true,
        }
    }

    pub fn get(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::GET, path, operation_id, summary)
    }

    pub fn post(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::POST, path, operation_id, summary)
    }

    pub fn put(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::PUT, path, operation_id, summary)
    }

    pub fn patch(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::PATCH, path, operation_id, summary)
    }

    pub fn delete(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::DELETE, path, operation_id, summary)
    }

    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    /// A JSON request body of type `T`.
    pub fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(Body::Json(schema_of::<T>));
        self
    }

    /// A Wasm component as the request body.
    pub fn wasm_body(mut self) -> Self {
        self.body = Some(Body::Wasm);
        self
    }

    /// Query parameters: the properties of `T`.
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    /// Answers `status` with a JSON body of type `T`.
    pub fn returns<T: JsonSchema>(mut self, status: StatusCode) -> Self {
        self.success = status;
        self.response = Some(schema_of::<T>);
        self
    }

    /// Answers `status` with no body.
    pub fn returns_nothing(mut self, status: StatusCode) -> Self {
        self.success = status;
        self.response = None;
        self
    }

    pub fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    /// Needs no bearer token.
    pub fn public(mut self) -> Self {
        self.auth = false;
        self
    }
}

/// A router under construction with the description of every route in it.
pub struct Routes {
    router: Router<AppState>,
    operations: Vec<Operation>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            operations: Vec::new(),
        }
    }

    /// Serves `handler` for the operation's method and path.
    pub fn add<H, T>(mut self, operation: Operation, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter =
            MethodFilter::try_from(operation.method.clone()).expect("operations use standard methods");
        self.router = self.router.route(&operation.path, on(filter, handler));
        self.operations.push(operation);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self
    }

    /// Mounts `other` under `prefix` (`/v1`), in the router and in the document.
    pub fn nest(mut self, prefix: &'static str, other: Routes) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.operations
            .extend(other.operations.into_iter().map(|mut operation| {
                operation.path = Cow::Owned(format!("{prefix}{}", operation.path));
                operation
            }));
        self
    }

    /// Wraps the routes added so far (a middleware layer), keeping their description.
    pub fn map_router(mut self, map: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = map(self.router);
        self
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// The OpenAPI 3.1 document for `operations`.
pub fn document(operations: &[Operation]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .into_generator();
    let error = generator.subschema_for::<trellis_types::ErrorBody>();
    let mut paths = Map::new();
    for operation in operations {
        let item = paths
            .entry(operation.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects");
        item.insert(
            operation.method.as_str().to_ascii_lowercase(),
            describe(operation, &mut generator, &error),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Trellis API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "WebAssembly functions and durable orchestrations whose compute steps carry their own secrets (`encryptedParams`): encrypted before they reach the database, masked as `********` on every read, decrypted only for the step that runs.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "functions", "description": "Upload, configure and invoke Wasm components." },
            { "name": "orchestrations", "description": "Definitions with step-scoped encrypted params." },
            { "name": "runs", "description": "Durable executions of an orchestration version." },
            { "name": "operations", "description": "Health, metrics, this document and the MCP endpoint." },
        ],
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token: `Authorization: Bearer <token>`."
                }
            }
        }
    })
}

fn describe(operation: &Operation, generator: &mut SchemaGenerator, error: &Schema) -> Value {
    let mut described = json!({
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
    });
    let object = described.as_object_mut().expect("an object");
    if let Some(description) = operation.description {
        object.insert("description".into(), description.into());
    }
    let mut parameters: Vec<Value> = path_parameters(&operation.path)
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if let Some(query) = operation.query {
        parameters.extend(query_parameters(query));
    }
    if !parameters.is_empty() {
        object.insert("parameters".into(), parameters.into());
    }
    if let Some(body) = operation.body {
        let content = match body {
            Body::Json(schema) => json!({ "application/json": { "schema": schema(generator) } }),
            Body::Wasm => {
                json!({ "application/wasm": { "schema": { "type": "string", "contentMediaType": "application/wasm" } } })
            }
        };
        object.insert(
            "requestBody".into(),
            json!({ "required": true, "content": content }),
        );
    }
    let mut responses = Map::new();
    let success = match operation.response {
        Some(schema) => json!({
            "description": reason(operation.success),
            "content": { "application/json": { "schema": schema(generator) } }
        }),
        None => json!({ "description": reason(operation.success) }),
    };
    responses.insert(operation.success.as_u16().to_string(), success);
    let mut errors: Vec<u16> = operation.errors.to_vec();
    if operation.body.is_some() || operation.query.is_some() {
        errors.push(400);
    }
    if operation.auth {
        errors.push(401);
    }
    errors.push(500);
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let status = StatusCode::from_u16(status).expect("a valid status");
        responses.insert(
            status.as_u16().to_string(),
            json!({
                "description": reason(status),
                "content": { "application/json": { "schema": error } }
            }),
        );
    }
    object.insert("responses".into(), responses.into());
    if operation.auth {
        object.insert("security".into(), json!([{ "bearer": [] }]));
    } else {
        object.insert("security".into(), json!([]));
    }
    described
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Response")
}

/// The `{name}` segments of an axum path.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// One query parameter per property of the query type's (inlined) schema.
fn query_parameters(query: SchemaFn) -> Vec<Value> {
    let mut inline = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let schema = query(&mut inline);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    let mut parameter = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    });
                    if let Some(description) = property.get("description") {
                        parameter["description"] = description.clone();
                    }
                    parameter
                })
                .collect()
        })
        .unwrap_or_default()
}
