use super::*;
use crate::upstream::NoRelay;

fn reply(id: u64) -> Message {
    Message::response(&id.to_string(), r#"{"ok":1}"#)
}

#[tokio::test]
async fn replies_come_back_with_the_callers_id() {
    let table = PendingTable::new();
    let a = table.register("\"a\"", Arc::new(NoRelay), None);
    let b = table.register("1", Arc::new(NoRelay), None);
    assert_ne!(a.link_id, b.link_id);
    assert_eq!(table.len(), 2);
    assert!(table.complete(reply(b.link_id)));
    assert!(table.complete(reply(a.link_id)));
    assert_eq!(a.reply.await.unwrap().unwrap().id(), Some("\"a\""));
    assert_eq!(b.reply.await.unwrap().unwrap().id(), Some("1"));
    assert!(table.is_empty());
    // A late or unknown reply is dropped.
    assert!(!table.complete(reply(a.link_id)));
    assert!(!table.complete(Message::response("\"x\"", "{}")));
}

#[tokio::test]
async fn progress_tokens_are_remapped_and_forgotten() {
    let table = PendingTable::new();
    let call = table.register("9", Arc::new(NoRelay), Some("\"client-token\""));
    let token = call.progress_token.clone().unwrap();
    assert_ne!(&*token, "\"client-token\"");
    let (_, original) = table.progress_target(&token).unwrap();
    assert_eq!(&*original, "\"client-token\"");
    assert!(table.complete(reply(call.link_id)));
    assert!(table.progress_target(&token).is_none());
}

#[tokio::test]
async fn a_dead_link_fails_every_call() {
    let table = PendingTable::new();
    let a = table.register("1", Arc::new(NoRelay), None);
    let b = table.register("2", Arc::new(NoRelay), Some("5"));
    let error = CallError::Unavailable {
        upstream: "u".into(),
        reason: "gone".into(),
    };
    table.fail_all(&error);
    assert!(matches!(
        a.reply.await.unwrap(),
        Err(CallError::Unavailable { .. })
    ));
    assert!(matches!(
        b.reply.await.unwrap(),
        Err(CallError::Unavailable { .. })
    ));
    assert!(table.progress_target(&b.progress_token.unwrap()).is_none());
}

#[test]
fn progress_tokens_are_rewritten_in_requests_and_notifications() {
    let request = Message::request(
        "1",
        "tools/call",
        Some(r#"{"name":"slow","_meta":{"progressToken":"mine","other":1}}"#),
    );
    let rewritten = with_progress_token(&request, "\"theirs\"");
    assert_eq!(
        rewritten.params(),
        Some(r#"{"name":"slow","_meta":{"progressToken":"theirs","other":1}}"#)
    );
    let note = Message::notification(
        "notifications/progress",
        Some(r#"{"progressToken":"theirs","progress":1}"#),
    );
    let back = with_notification_token(&note, "\"mine\"");
    assert_eq!(
        back.params(),
        Some(r#"{"progressToken":"mine","progress":1}"#)
    );
}
