//! The local stack's runner: reads `template.yaml`, creates its tables (DynamoDB Local), buckets
//! and queues (moto) with their notifications, serves its HTTP functions on 127.0.0.1 and
//! polls its queues into the queue handlers — the same handlers, through the real AWS SDK.

pub mod functions;
pub mod server;
pub mod stack;
pub mod tables;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use intake_shared::App;

pub use stack::Clients;

/// Parameters of the template, as the runner fills them.
pub fn params(operator_key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("OperatorKey".to_owned(), operator_key.to_owned()),
        ("LogLevel".to_owned(), "info".to_owned()),
        (
            "ChunkRows".to_owned(),
            std::env::var("INTAKE_CHUNK_ROWS").unwrap_or_else(|_| "2000".into()),
        ),
        (
            "PollSettleSeconds".to_owned(),
            std::env::var("INTAKE_POLL_SETTLE_SECONDS").unwrap_or_else(|_| "30".into()),
        ),
    ])
}

/// A local system's parts: the router, each function's `App`, the queue pollers.
pub struct Local {
    pub router: server::Router,
    pub apps: BTreeMap<String, Arc<App>>,
    pub template: template::Template,
    pub pollers: Vec<stack::Poller>,
    /// Physical values of the resources (`!Ref`): table and bucket names, queue URLs.
    pub refs: BTreeMap<String, String>,
    pub clients: Clients,
    pub delivered: stack::Delivered,
    /// Scheduled functions: logical id, period, handler.
    pub schedules: Vec<(String, std::time::Duration, functions::ScheduledHandler)>,
}

impl Local {
    /// Fires every scheduled function on its period (`every` overrides all periods, for a
    /// local stack that should not wait 15 minutes).
    pub fn start_schedules(
        &self,
        every: Option<std::time::Duration>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.schedules
            .iter()
            .map(|(function, period, handler)| {
                let (period, handler, function) =
                    (every.unwrap_or(*period), handler.clone(), function.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        tracing::debug!(function = %function, "schedule fired");
                        handler(chrono::Utc::now()).await;
                    }
                })
            })
            .collect()
    }

    /// Starts `workers` pollers per queue event (Lambda runs several concurrent batches).
    pub fn start_pollers(&self, workers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for poller in &self.pollers {
            for _ in 0..workers.max(1) {
                handles.push(tokio::spawn(poller.clone().run(self.clients.sqs.clone())));
            }
        }
        handles
    }
}

/// Creates the tables, queues and buckets under `prefix` and wires every route and queue
/// event of the template. Fails when the template names a function the runner cannot host.
pub async fn build(
    clients: &Clients,
    template_path: &Path,
    prefix: &str,
    params: &BTreeMap<String, String>,
) -> anyhow::Result<Local> {
    let template = template::Template::load(template_path)?;
    let mut refs = BTreeMap::new();
    for table in tables::create_tables(&clients.dynamodb, &template, prefix).await? {
        if let Some(id) = table.strip_prefix(prefix) {
            refs.insert(id.to_owned(), table.clone());
        }
    }
    let queues = stack::create_queues(&clients.sqs, &template, prefix).await?;
    refs.extend(queues.iter().map(|(id, q)| (id.clone(), q.url.clone())));
    refs.extend(stack::create_buckets(&clients.s3, &template, prefix, &queues).await?);
    let mut apps = BTreeMap::new();
    for function in template.env.keys() {
        let env = functions::resolve_env(&template, function, &refs, params);
        apps.insert(function.clone(), functions::app_for(clients, &env)?);
    }
    let app = |f: &str| {
        apps.get(f)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown function {f}"))
    };
    let mut routes = Vec::new();
    for route in &template.routes {
        let handler = functions::handler(&route.function, app(&route.function)?)
            .ok_or_else(|| anyhow::anyhow!("runner cannot host function {}", route.function))?;
        let authorizer = match &route.authorizer {
            Some(f) => Some(
                functions::authorizer(f, app(f)?)
                    .ok_or_else(|| anyhow::anyhow!("{f} is not an authorizer"))?,
            ),
            None => None,
        };
        routes.push((route.clone(), handler, authorizer));
    }
    let mut pollers = Vec::new();
    let delivered = stack::Delivered::default();
    for event in &template.queue_events {
        let handler =
            functions::queue_handler(&event.function, app(&event.function)?).ok_or_else(|| {
                anyhow::anyhow!("runner cannot host queue function {}", event.function)
            })?;
        let queue = queues
            .get(&event.queue)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown queue {}", event.queue))?;
        pollers.push(stack::Poller {
            function: event.function.clone(),
            queue_id: event.queue.clone(),
            queue,
            batch_size: event.batch_size,
            handler,
            delivered: delivered.clone(),
        });
    }
    let mut schedules = Vec::new();
    for event in &template.schedules {
        let handler = functions::scheduled_handler(&event.function, app(&event.function)?)
            .ok_or_else(|| {
                anyhow::anyhow!("runner cannot host scheduled function {}", event.function)
            })?;
        schedules.push((
            event.function.clone(),
            std::time::Duration::from_secs(event.every_seconds),
            handler,
        ));
    }
    Ok(Local {
        schedules,
        router: server::Router::new(routes),
        apps,
        template,
        pollers,
        refs,
        clients: clients.clone(),
        delivered,
    })
}
