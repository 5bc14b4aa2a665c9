use super::*;

fn decode_all(chunks: &[&[u8]]) -> Vec<Event> {
    let mut decoder = Decoder::new(1 << 20);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(decoder.push(chunk).unwrap());
    }
    out
}

#[test]
fn decodes_message_events_with_ids() {
    let events = decode_all(&[b"event: message\nid: 7\ndata: {\"a\":1}\n\n"]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id.as_deref(), Some("7"));
    assert_eq!(events[0].data, "{\"a\":1}");
    assert!(events[0].is_message());
}

#[test]
fn keeps_priming_events_with_empty_data() {
    let events = decode_all(&[b"id: abc\ndata: \n\n", b"id: abd\ndata:\n\n"]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id.as_deref(), Some("abc"));
    assert_eq!(events[0].data, "");
    assert!(!events[0].is_message());
}

#[test]
fn handles_every_line_ending_and_split_chunks() {
    let events = decode_all(&[b"data: one\r", b"\ndata: two\r\r\n", b"data: x\n", b"\n"]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].data, "one\ntwo");
    assert_eq!(events[1].data, "x");
}

#[test]
fn ignores_comments_and_unknown_fields() {
    let events = decode_all(&[b": keep-alive\n\nfoo: bar\ndata: y\n\n"]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "y");
}

#[test]
fn parses_retry() {
    let events = decode_all(&[b"retry: 1500\nid: 1\ndata:\n\n"]);
    assert_eq!(events[0].retry, Some(1500));
}

#[test]
fn refuses_oversized_events() {
    let mut decoder = Decoder::new(16);
    assert!(decoder.push(b"data: 0123456789").is_ok());
    assert_eq!(
        decoder.push(b"0123456789"),
        Err(SseError::EventTooLarge { limit: 16 })
    );
}

#[test]
fn encode_roundtrips_multiline_data() {
    let text = b"{\n  \"a\": 1\r\n}";
    let encoded = encode(Some("5"), text);
    let events = decode_all(&[&encoded]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id.as_deref(), Some("5"));
    assert_eq!(events[0].data, "{\n  \"a\": 1\n}");
}

#[test]
fn priming_event_decodes_as_non_message() {
    let events = decode_all(&[&encode_priming("s1-0", Some(100))]);
    assert_eq!(events.len(), 1);
    assert!(!events[0].is_message());
    assert_eq!(events[0].retry, Some(100));
}

proptest::proptest! {
    #[test]
    fn any_single_line_payload_roundtrips(data in "[^\r\n]{1,200}", id in "[a-z0-9-]{1,20}") {
        let encoded = encode(Some(&id), data.as_bytes());
        let mut decoder = Decoder::new(1 << 20);
        // Feed byte by byte to exercise chunk boundaries.
        let mut events = Vec::new();
        for b in encoded.iter() {
            events.extend(decoder.push(&[*b]).unwrap());
        }
        proptest::prop_assert_eq!(events.len(), 1);
        proptest::prop_assert_eq!(&events[0].data, &data);
        proptest::prop_assert_eq!(events[0].id.as_deref(), Some(id.as_str()));
    }
}

#[test]
fn keep_alive_comments_never_add_up() {
    let mut decoder = Decoder::new(64);
    for _ in 0..1000 {
        assert_eq!(
            decoder.push(b": ping - 2026-11-24 12:00:00\n\n"),
            Ok(vec![])
        );
    }
    let events = decoder.push(b"data: {}\n\n").unwrap();
    assert_eq!(events.len(), 1);
}
