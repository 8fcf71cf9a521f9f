//! `worker redrive`: what died goes back into the pipeline, and nothing is
//! lost on the way.

use broker::lapin::BasicProperties;
use broker::lapin::options::{BasicGetOptions, BasicPublishOptions};
use broker::lapin::types::{AMQPValue, FieldTable};
use opentelemetry::metrics::MeterProvider as _;
use worker::{Redrive, Worker};

use crate::scheduler::{config, database_with_a_due_notification, state_of, unique_names};
use test_support::TestBroker;

fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test")
}

#[tokio::test]
async fn dead_notifications_go_back_to_pending_and_are_published_again() {
    let (database, pool, id) = database_with_a_due_notification().await;
    let broker = TestBroker::new();
    sqlx::query(
        "UPDATE notifications SET status = 'dead', attempts = 5, last_error = 'refused' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let worker = Worker::new(&config(database.url(), &unique_names(&broker)), &meter()).unwrap();
    assert_eq!(worker.scheduler().pass().await.unwrap().claimed, 0);

    assert_eq!(
        worker.redrive(Redrive::Notifications, 1000).await.unwrap(),
        1
    );
    assert_eq!(state_of(&pool, id).await, ("pending".to_owned(), 0, false));
    assert_eq!(worker.scheduler().pass().await.unwrap().published, 1);
    assert_eq!(state_of(&pool, id).await.0, "sent");
}

/// Ready messages in `queue` (which must exist).
async fn ready(queue: &str) -> u32 {
    let broker = broker::Broker::new(
        test_support::rabbitmq_url().into(),
        broker::Topology::default(),
        &meter(),
    )
    .unwrap();
    broker.ready_messages(queue).await.unwrap()
}

#[tokio::test]
async fn dead_letters_go_back_to_their_queue_without_the_reason_they_died() {
    let database = test_support::fresh_database().await;
    let broker = TestBroker::new();
    let names = unique_names(&broker);
    let bot_queue = names["BOT_QUEUE"].clone();
    let worker = Worker::new(&config(database.url(), &names), &meter()).unwrap();
    // Declares the topology, dead-letter queues included.
    assert_eq!(
        worker.redrive(Redrive::BotDeadLetters, 10).await.unwrap(),
        0
    );

    let amqp =
        broker::lapin::Connection::connect(&test_support::rabbitmq_url(), Default::default())
            .await
            .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    // Confirmed publishes: each is in the queue once its confirm is back.
    channel.confirm_select(Default::default()).await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        broker::consumer::REASON_HEADER.into(),
        AMQPValue::LongString("webhook refused the message: 400".into()),
    );
    for i in 0..3 {
        channel
            .basic_publish(
                format!("{bot_queue}.dlx").as_str().into(),
                "notification.announcement".into(),
                BasicPublishOptions::default(),
                br#"{"dead": true}"#,
                BasicProperties::default()
                    .with_message_id(format!("n-{i}").into())
                    .with_headers(headers.clone()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(ready(&format!("{bot_queue}.dlq")).await, 3);

    // A limit is a limit; the rest stays dead until the next run.
    assert_eq!(worker.redrive(Redrive::BotDeadLetters, 2).await.unwrap(), 2);
    assert_eq!(
        worker.redrive(Redrive::BotDeadLetters, 10).await.unwrap(),
        1
    );
    assert_eq!(ready(&format!("{bot_queue}.dlq")).await, 0);

    let mut ids = Vec::new();
    while let Some(message) = channel
        .basic_get(bot_queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        assert_eq!(delivery.routing_key.as_str(), "notification.announcement");
        assert_eq!(delivery.data, br#"{"dead": true}"#);
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        assert!(
            !headers
                .inner()
                .contains_key(broker::consumer::REASON_HEADER),
            "the reason it died travels on"
        );
        ids.push(
            delivery
                .properties
                .message_id()
                .clone()
                .unwrap()
                .to_string(),
        );
    }
    ids.sort();
    assert_eq!(ids, ["n-0", "n-1", "n-2"]);
}
