//! The template's S3 buckets and SQS queues on moto (redrive policies and S3 → SQS
//! notifications included), and the pollers that deliver queue messages to queue handlers the
//! way Lambda's SQS event source does: batches, partial batch responses, redelivery.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::functions::QueueHandler;
use crate::template::Template;

/// The SDK clients the local stack uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Clients from the SDK configuration (endpoints from `AWS_ENDPOINT_URL_*`), S3 path-style.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(true)
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }
}

/// A created queue.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    pub url: String,
    pub arn: String,
}

/// Local bucket names: lower case, as S3 wants.
pub fn bucket_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}{logical_id}").to_lowercase()
}

/// Creates the template's queues (dead-letter targets first) and returns them by logical id.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    template: &Template,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, LocalQueue>> {
    let mut created: BTreeMap<String, LocalQueue> = BTreeMap::new();
    let mut order: Vec<(&String, _)> = template.queues.iter().collect();
    order.sort_by_key(|(_, q)| q.redrive.is_some());
    for (id, queue) in order {
        let mut req = sqs.create_queue().queue_name(format!("{prefix}{id}"));
        if let Some(v) = queue.visibility_timeout {
            req = req.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some((dlq, max)) = &queue.redrive {
            let target = created
                .get(dlq)
                .ok_or_else(|| anyhow::anyhow!("queue {id} redrives to unknown {dlq}"))?;
            let policy =
                serde_json::json!({"deadLetterTargetArn": target.arn, "maxReceiveCount": max})
                    .to_string();
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let url = req
            .send()
            .await?
            .queue_url
            .ok_or_else(|| anyhow::anyhow!("no url for queue {id}"))?;
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        let arn = attrs
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| anyhow::anyhow!("no arn for queue {id}"))?;
        created.insert(id.clone(), LocalQueue { url, arn });
    }
    Ok(created)
}

/// Creates the template's buckets and their S3 → SQS notifications.
pub async fn create_buckets(
    s3: &aws_sdk_s3::Client,
    template: &Template,
    prefix: &str,
    queues: &BTreeMap<String, LocalQueue>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut names = BTreeMap::new();
    for (id, bucket) in &template.buckets {
        let name = bucket_name(prefix, id);
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) => {}
            Err(e) => {
                return Err(anyhow::Error::msg(
                    aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                ))
            }
        }
        let mut configs = Vec::new();
        for (queue, key_prefix) in &bucket.notifications {
            let arn = &queues
                .get(queue)
                .ok_or_else(|| anyhow::anyhow!("bucket {id} notifies unknown queue {queue}"))?
                .arn;
            let rule = FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(key_prefix)
                .build();
            let filter = NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().filter_rules(rule).build())
                .build();
            configs.push(
                QueueConfiguration::builder()
                    .queue_arn(arn)
                    .events(Event::from("s3:ObjectCreated:*"))
                    .filter(filter)
                    .build()?,
            );
        }
        if !configs.is_empty() {
            let conf = NotificationConfiguration::builder()
                .set_queue_configurations(Some(configs))
                .build();
            s3.put_bucket_notification_configuration()
                .bucket(&name)
                .notification_configuration(conf)
                .send()
                .await?;
        }
        names.insert(id.clone(), name);
    }
    Ok(names)
}

/// Every message body a poller delivered, with its queue's logical id (for tests that replay
/// a real message).
pub type Delivered = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// One poller of one queue.
#[derive(Clone)]
pub struct Poller {
    pub function: String,
    pub queue_id: String,
    pub queue: LocalQueue,
    pub batch_size: i32,
    pub handler: QueueHandler,
    pub delivered: Delivered,
}

impl Poller {
    /// Receives batches forever and hands them to the handler. Messages the handler reports
    /// as failed come back after a second (AWS waits for the visibility timeout; the local
    /// stack shortens it so retries and redrives happen within a test).
    pub async fn run(self, sqs: aws_sdk_sqs::Client) {
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&self.queue.url)
                .max_number_of_messages(self.batch_size.clamp(1, 10))
                .wait_time_seconds(1)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(queue = %self.queue.url, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let mut event = SqsEvent::default();
            for m in &messages {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.event_source_arn = Some(self.queue.arn.clone());
                record.event_source = Some("aws:sqs".into());
                event.records.push(record);
            }
            if let Ok(mut log) = self.delivered.lock() {
                log.extend(
                    messages
                        .iter()
                        .filter_map(|m| Some((self.queue_id.clone(), m.body.clone()?))),
                );
            }
            let response = (self.handler)(event).await;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for m in &messages {
                let (Some(id), Some(handle)) =
                    (m.message_id.as_deref(), m.receipt_handle.as_deref())
                else {
                    continue;
                };
                let result = if failed.contains(&id) {
                    sqs.change_message_visibility()
                        .queue_url(&self.queue.url)
                        .receipt_handle(handle)
                        .visibility_timeout(1)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                } else {
                    sqs.delete_message()
                        .queue_url(&self.queue.url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                };
                if let Err(e) = result {
                    tracing::warn!(function = %self.function, error = %e, "could not settle message");
                }
            }
        }
    }
}
