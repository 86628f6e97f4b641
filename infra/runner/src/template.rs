//! Reads `template.yaml`: the HTTP routes of every function, the DynamoDB table definitions and
//! each function's environment, so the local stack is built from the same source as AWS.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

/// Errors of reading the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template resource {resource}: {reason}")]
    Shape { resource: String, reason: String },
}

/// One API Gateway route and the function serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
    /// The authorizer function guarding the route (the API's default unless the event says
    /// `Auth: {Authorizer: NONE}`).
    pub authorizer: Option<String>,
}

impl Route {
    /// The API Gateway route key, e.g. `"GET /v1/contacts/{id}"`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// An environment value: a literal or a reference to another resource or parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    Ref(String),
}

/// An SQS queue: its visibility timeout and dead-letter redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub visibility_timeout: Option<u32>,
    /// (dead-letter queue logical id, maxReceiveCount)
    pub redrive: Option<(String, u32)>,
}

/// An S3 bucket and the queues its ObjectCreated events go to: (queue logical id, key prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub notifications: Vec<(String, String)>,
}

/// A function's SQS event source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
}

/// A function's `Schedule` event (`rate(N minutes|hours|days)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub function: String,
    pub every_seconds: u64,
}

/// Seconds of an EventBridge `rate(...)` expression.
pub fn rate_seconds(expr: &str) -> Option<u64> {
    let inner = expr.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let unit = match unit.trim().trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(n * unit)
}

/// What the runner needs from the template.
#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<Route>,
    pub queues: BTreeMap<String, Queue>,
    pub buckets: BTreeMap<String, Bucket>,
    pub queue_events: Vec<QueueEvent>,
    pub schedules: Vec<ScheduleEvent>,
    /// Logical id → `Properties` of each `AWS::DynamoDB::Table`, as YAML.
    pub tables: BTreeMap<String, Value>,
    /// Function logical id → environment (Globals merged with the function's own).
    pub env: BTreeMap<String, BTreeMap<String, EnvValue>>,
}

fn env_of(value: Option<&Value>) -> BTreeMap<String, EnvValue> {
    let mut out = BTreeMap::new();
    let vars = value
        .and_then(|v| v.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping);
    for (k, v) in vars.into_iter().flatten() {
        let Some(name) = k.as_str() else { continue };
        let parsed = match v {
            Value::Tagged(t) if t.tag == "!Ref" => {
                t.value.as_str().map(|s| EnvValue::Ref(s.to_owned()))
            }
            Value::Mapping(m) => m
                .get("Ref")
                .and_then(Value::as_str)
                .map(|s| EnvValue::Ref(s.to_owned())),
            Value::String(s) => Some(EnvValue::Literal(s.clone())),
            Value::Number(n) => Some(EnvValue::Literal(n.to_string())),
            _ => None,
        };
        if let Some(p) = parsed {
            out.insert(name.to_owned(), p);
        }
    }
    out
}

/// The logical id named by `!GetAtt X.Arn` (or `Fn::GetAtt: [X, Arn]`).
fn get_att_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!GetAtt" => {
            t.value.as_str()?.split('.').next().map(str::to_owned)
        }
        other => other.get("Fn::GetAtt")?.get(0)?.as_str().map(str::to_owned),
    }
}

fn queue_of(props: Option<&Value>) -> Queue {
    let props = props.cloned().unwrap_or(Value::Null);
    let redrive = props.get("RedrivePolicy").and_then(|r| {
        let target = get_att_target(r.get("deadLetterTargetArn")?)?;
        let max = r
            .get("maxReceiveCount")
            .and_then(Value::as_u64)
            .unwrap_or(5) as u32;
        Some((target, max))
    });
    Queue {
        visibility_timeout: props
            .get("VisibilityTimeout")
            .and_then(Value::as_u64)
            .map(|v| v as u32),
        redrive,
    }
}

fn bucket_of(props: Option<&Value>) -> Bucket {
    let configs = props
        .and_then(|p| p.get("NotificationConfiguration"))
        .and_then(|n| n.get("QueueConfigurations"))
        .and_then(Value::as_sequence);
    let notifications = configs
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let queue = get_att_target(c.get("Queue")?)?;
            let rules = c
                .get("Filter")
                .and_then(|f| f.get("S3Key"))
                .and_then(|k| k.get("Rules"))
                .and_then(Value::as_sequence);
            let prefix = rules
                .into_iter()
                .flatten()
                .find(|r| r.get("Name").and_then(Value::as_str) == Some("prefix"))
                .and_then(|r| r.get("Value"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some((queue, prefix.to_owned()))
        })
        .collect();
    Bucket { notifications }
}

/// The function behind the HTTP API's default Lambda authorizer (`FunctionArn: !GetAtt X.Arn`).
fn default_authorizer(resources: &serde_yaml::Mapping) -> Option<String> {
    let auth = resources
        .values()
        .find(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi"))?
        .get("Properties")?
        .get("Auth")?;
    let name = auth.get("DefaultAuthorizer")?.as_str()?;
    let arn = auth.get("Authorizers")?.get(name)?.get("FunctionArn")?;
    let target = match arn {
        Value::Tagged(t) if t.tag == "!GetAtt" => t.value.as_str()?.to_owned(),
        other => other.get("Fn::GetAtt")?.get(0)?.as_str()?.to_owned() + ".Arn",
    };
    target.strip_suffix(".Arn").map(str::to_owned)
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_yaml::from_str(text)?;
        let globals = doc.get("Globals").and_then(|g| g.get("Function"));
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Shape {
                resource: "Resources".into(),
                reason: "missing".into(),
            })?;
        let mut template = Template {
            routes: Vec::new(),
            tables: BTreeMap::new(),
            env: BTreeMap::new(),
            queues: BTreeMap::new(),
            buckets: BTreeMap::new(),
            queue_events: Vec::new(),
            schedules: Vec::new(),
        };
        let default_authorizer = default_authorizer(resources);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let props = resource.get("Properties");
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::SQS::Queue") => {
                    template.queues.insert(id, queue_of(props));
                }
                Some("AWS::S3::Bucket") => {
                    template.buckets.insert(id, bucket_of(props));
                }
                Some("AWS::DynamoDB::Table") => {
                    template
                        .tables
                        .insert(id, props.cloned().unwrap_or(Value::Null));
                }
                Some("AWS::Serverless::Function") => {
                    let mut env = env_of(globals);
                    env.extend(env_of(props));
                    template.env.insert(id.clone(), env);
                    let events = props
                        .and_then(|p| p.get("Events"))
                        .and_then(Value::as_mapping);
                    for (_, event) in events.into_iter().flatten() {
                        if event.get("Type").and_then(Value::as_str) == Some("Schedule") {
                            let expr = event
                                .get("Properties")
                                .and_then(|p| p.get("Schedule"))
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            let every_seconds =
                                rate_seconds(expr).ok_or_else(|| TemplateError::Shape {
                                    resource: id.clone(),
                                    reason: format!(
                                        "schedule {expr:?} is not rate(N minutes|hours|days)"
                                    ),
                                })?;
                            template.schedules.push(ScheduleEvent {
                                function: id.clone(),
                                every_seconds,
                            });
                            continue;
                        }
                        if event.get("Type").and_then(Value::as_str) == Some("SQS") {
                            let p = event.get("Properties");
                            if let Some(queue) =
                                p.and_then(|p| p.get("Queue")).and_then(get_att_target)
                            {
                                let batch_size =
                                    p.and_then(|p| p.get("BatchSize"))
                                        .and_then(Value::as_i64)
                                        .unwrap_or(10) as i32;
                                template.queue_events.push(QueueEvent {
                                    function: id.clone(),
                                    queue,
                                    batch_size,
                                });
                            }
                            continue;
                        }
                        if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                            continue;
                        }
                        let p = event.get("Properties");
                        let field = |name: &str| {
                            p.and_then(|p| p.get(name))
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        };
                        let (Some(method), Some(path)) = (field("Method"), field("Path")) else {
                            return Err(TemplateError::Shape {
                                resource: id,
                                reason: "HttpApi event without Method and Path".into(),
                            });
                        };
                        let opted_out = p
                            .and_then(|p| p.get("Auth"))
                            .and_then(|a| a.get("Authorizer"))
                            .and_then(Value::as_str)
                            == Some("NONE");
                        template.routes.push(Route {
                            method: method.to_uppercase(),
                            path,
                            function: id.clone(),
                            authorizer: if opted_out {
                                None
                            } else {
                                default_authorizer.clone()
                            },
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(template)
    }
}
