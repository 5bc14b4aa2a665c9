use super::*;

fn lines(decoder: &mut LineDecoder, chunk: &[u8]) -> Vec<Result<String, FramingError>> {
    decoder
        .push(chunk)
        .into_iter()
        .map(|r| r.map(|b| String::from_utf8(b.to_vec()).unwrap()))
        .collect()
}

#[test]
fn splits_lines_across_chunks() {
    let mut d = LineDecoder::new(100);
    assert!(lines(&mut d, b"{\"a\"").is_empty());
    assert_eq!(
        lines(&mut d, b":1}\r\n\n{\"b\":2}\n{\"c\""),
        vec![Ok("{\"a\":1}".into()), Ok("{\"b\":2}".into())]
    );
    assert_eq!(d.pending(), 4);
}

#[test]
fn drops_overlong_lines_and_recovers() {
    let mut d = LineDecoder::new(8);
    let out = lines(&mut d, b"0123456789abc");
    assert_eq!(out, vec![Err(FramingError::LineTooLong { limit: 8 })]);
    // The rest of the long line is skipped, the next line is fine.
    assert_eq!(lines(&mut d, b"def\n{}\n"), vec![Ok("{}".into())]);
    let out = lines(&mut d, b"0123456789\n{}\n");
    assert_eq!(
        out,
        vec![Err(FramingError::LineTooLong { limit: 8 }), Ok("{}".into())]
    );
}

#[test]
fn encode_line_removes_raw_line_breaks() {
    assert_eq!(&encode_line(b"{\"a\":1}")[..], b"{\"a\":1}\n");
    assert_eq!(&encode_line(b"{\n\"a\":\r\n1}")[..], b"{ \"a\":  1}\n");
}
