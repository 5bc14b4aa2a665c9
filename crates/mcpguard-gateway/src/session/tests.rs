use super::*;

fn message(n: u32) -> Message {
    Message::notification(
        "notifications/progress",
        Some(&format!(r#"{{"progress":{n}}}"#)),
    )
}

fn drain(rx: &mut mpsc::Receiver<StreamEvent>) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(event) = rx.try_recv() {
        ids.push(event.id);
    }
    ids
}

#[test]
fn a_stream_replays_what_came_after_the_last_event_id() {
    let stream = Stream::new(3, 10);
    stream.prime(Some(500));
    stream.push(&message(1));
    stream.push(&message(2));
    let mut all = stream.attach(None).unwrap();
    assert_eq!(drain(&mut all), ["3-0", "3-1", "3-2"]);
    // A new event reaches the attached agent live.
    stream.push(&message(3));
    assert_eq!(drain(&mut all), ["3-3"]);
    // Resuming after 3-1 replays 3-2 and 3-3.
    let mut resumed = stream.attach(Some(1)).unwrap();
    assert_eq!(drain(&mut resumed), ["3-2", "3-3"]);
    let priming = stream.attach(None).unwrap().try_recv().unwrap();
    assert!(priming.message.is_none());
    assert_eq!(
        priming.to_sse(),
        Bytes::from("id: 3-0\nretry: 500\ndata: \n\n")
    );
}

#[test]
fn events_dropped_from_the_buffer_cannot_be_resumed() {
    let stream = Stream::new(1, 2);
    for n in 0..5 {
        stream.push(&message(n));
    }
    assert!(stream.attach(Some(0)).is_none());
    let mut rx = stream.attach(Some(2)).unwrap();
    assert_eq!(drain(&mut rx), ["1-3", "1-4"]);
}

#[tokio::test]
async fn detach_ends_the_response_but_not_the_stream() {
    let stream = Stream::new(1, 10);
    let mut first = stream.attach(None).unwrap();
    stream.push(&message(1));
    stream.detach();
    assert_eq!(first.recv().await.unwrap().id, "1-0");
    assert!(
        first.recv().await.is_none(),
        "the detached response must end"
    );
    stream.push(&message(2));
    let mut second = stream.attach(Some(0)).unwrap();
    assert_eq!(second.recv().await.unwrap().id, "1-1");
    stream.finish();
    assert!(
        second.recv().await.is_none(),
        "a finished stream ends its response"
    );
}

#[test]
fn event_ids_parse() {
    assert_eq!(parse_event_id("12-7"), Some((12, 7)));
    assert_eq!(parse_event_id("x-1"), None);
    assert_eq!(parse_event_id("17"), None);
}

#[tokio::test]
async fn answers_reach_the_request_they_answer() {
    let session = Session::new(
        r#"{"capabilities":{"sampling":{}},"clientInfo":{"name":"c"}}"#,
        "2025-11-25",
        8,
    );
    assert_eq!(&*session.client_capabilities, r#"{"sampling":{}}"#);
    let (id, rx) = session.expect_answer();
    let (other, _rx2) = session.expect_answer();
    assert_ne!(id, other);
    let answer = Message::response(&id, r#"{"ok":true}"#);
    assert!(session.deliver_answer(answer));
    assert_eq!(rx.await.unwrap().result(), Some(r#"{"ok":true}"#));
    // A second answer to the same id, or to an unknown id, finds nobody.
    assert!(!session.deliver_answer(Message::response(&id, "{}")));
    assert!(!session.deliver_answer(Message::response("\"nope\"", "{}")));
}

#[tokio::test]
async fn cancel_stops_a_tracked_request_once() {
    let session = Session::new("{}", "2025-11-25", 8);
    let token = session.track("5").unwrap();
    assert!(
        session.track("5").is_none(),
        "an id in flight cannot be used again"
    );
    assert!(!token.is_cancelled());
    assert!(session.cancel("5"));
    assert!(token.is_cancelled());
    assert!(!session.cancel("5"));
    let other = session.track("6").unwrap();
    session.close().await;
    assert!(
        other.is_cancelled(),
        "closing the session cancels its calls"
    );
}

#[test]
fn unsolicited_messages_wait_for_the_get_stream() {
    let session = Session::new("{}", "2025-11-25", 8);
    session.send_unsolicited(&message(1));
    let stream = session.standalone_stream();
    let mut rx = stream.attach(None).unwrap();
    let ids = drain(&mut rx);
    assert_eq!(ids.len(), 2, "priming event and the backlog: {ids:?}");
    session.send_unsolicited(&message(2));
    assert_eq!(drain(&mut rx).len(), 1);
}

#[tokio::test]
async fn the_store_ends_idle_sessions() {
    let store = SessionStore::new();
    let session = Arc::new(Session::new("{}", "2025-11-25", 8));
    store.insert(session.clone());
    assert!(store.get(session.id()).is_some());
    assert_eq!(store.expire(Duration::from_secs(3600)).await, 0);
    assert_eq!(store.expire(Duration::ZERO).await, 1);
    assert!(store.get(session.id()).is_none());
    assert!(session.is_closed());
    assert!(!store.end(session.id()).await);
}

#[tokio::test]
async fn a_session_in_use_is_not_expired() {
    let store = SessionStore::new();
    let session = Arc::new(Session::new("{}", "2025-11-25", 8));
    store.insert(session.clone());
    // A call in flight keeps it.
    let _token = session.track("1").unwrap();
    assert_eq!(store.expire(Duration::ZERO).await, 0);
    session.untrack("1");
    // So does an attached GET stream.
    let stream = session.standalone_stream();
    let rx = stream.attach(None).unwrap();
    assert_eq!(store.expire(Duration::ZERO).await, 0);
    drop(rx);
    assert_eq!(store.expire(Duration::ZERO).await, 1);
}

#[test]
fn a_fresh_get_gets_only_what_nobody_received() {
    let stream = Stream::new(1, 4);
    stream.push(&message(1));
    let mut first = stream.attach_fresh();
    assert_eq!(drain(&mut first), ["1-0"]);
    stream.push(&message(2));
    assert_eq!(drain(&mut first), ["1-1"]);
    drop(first);
    // Nobody attached: these wait, even beyond the buffer's size (the oldest are dropped).
    for n in 3..10 {
        stream.push(&message(n));
    }
    let mut second = stream.attach_fresh();
    assert_eq!(drain(&mut second), ["1-5", "1-6", "1-7", "1-8"]);
}

#[test]
fn the_replay_buffer_is_bounded_in_bytes_too() {
    let stream = Stream::new(1, 1000);
    let big = "x".repeat(1024 * 1024);
    for n in 0..40 {
        stream.push(&Message::notification(
            "notifications/message",
            Some(&format!(r#"{{"n":{n},"data":"{big}"}}"#)),
        ));
    }
    let mut rx = stream.attach_fresh();
    let kept = drain(&mut rx);
    assert!(kept.len() <= 16, "{} events kept", kept.len());
    assert_eq!(kept.last().map(String::as_str), Some("1-39"));
}

#[tokio::test]
async fn an_agent_that_falls_behind_is_cut_off_and_resumes_from_the_buffer() {
    let stream = Stream::new(1, 64);
    let mut stalled = stream.attach(None).unwrap();
    for n in 0..(64 + LIVE_QUEUE + 10) as u32 {
        stream.push(&message(n));
    }
    // The queue held what fits; then the response was cut.
    let mut got = Vec::new();
    while let Some(event) = stalled.recv().await {
        got.push(event.id);
    }
    assert_eq!(got.len(), 64 + LIVE_QUEUE);
    assert!(!stream.is_attached());
    // The agent resumes after the last event it got: nothing is lost.
    let last = parse_event_id(got.last().unwrap()).unwrap().1;
    let mut resumed = stream.attach(Some(last)).unwrap();
    let rest = drain(&mut resumed);
    assert_eq!(rest.len(), 10, "{rest:?}");
}
