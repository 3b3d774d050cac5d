//! Properties of the file source's line splitter: the lines of any file
//! come back as written, cut or skipped at `max_line_bytes`, with the part
//! of a line kept between two reads never larger than the limit (and a `\r`).

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use datascale_testing as testing;

/// A limit and the lines of a file, some long runs spanning several
/// reads of [`READ_CHUNK`] bytes.
fn limit_and_lines() -> impl Strategy<Value = (usize, Vec<Vec<u8>>)> {
    let max = prop_oneof![
        1..100usize,
        READ_CHUNK - 2..READ_CHUNK + 2,
        2 * READ_CHUNK..3 * READ_CHUNK
    ];
    lines::proptests::limit_and_lines(max, 3 * READ_CHUNK, 8)
}

fn config(max: usize, skip: bool) -> FileConfig {
    serde_json::from_value(serde_json::json!({
        "include": ["unused"],
        "max_line_bytes": max,
        "oversize_lines": if skip { "skip" } else { "truncate" },
    }))
    .unwrap()
}

fn message(event: &Event) -> Vec<u8> {
    match event.field("message") {
        Some(vrl::value::Value::Bytes(bytes)) => bytes.to_vec(),
        other => panic!("a line's event has its bytes as `message`, not {other:?}"),
    }
}

proptest! {
    #![proptest_config(testing::cases(64))]

    /// Every complete line comes back in order, without its `\n` and the
    /// `\r` before it, cut to `max_line_bytes` (or left out, with `skip`)
    /// exactly when its content is longer, and counted then; a last line
    /// without its `\n` is not sent yet; the offset reached is just past
    /// the last `\n`.
    #[test]
    fn a_files_lines_come_back_as_written(
        (max, lines) in limit_and_lines(),
        last_ended in any::<bool>(),
        skip in any::<bool>(),
    ) {
        let mut text = Vec::new();
        let mut expected = Vec::new();
        let mut oversize = 0;
        let mut end = 0;
        for (index, line) in lines.iter().enumerate() {
            text.extend_from_slice(line);
            if index + 1 == lines.len() && !last_ended {
                break;
            }
            text.push(b'\n');
            end = text.len() as u64;
            let content = line.strip_suffix(b"\r").unwrap_or(line);
            let cut = content.len() > max;
            oversize += usize::from(cut);
            if !(cut && skip) {
                expected.push(content[..content.len().min(max)].to_vec());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.log");
        std::fs::write(&path, &text).unwrap();

        let config = config(max, skip);
        let origin = Origin::new("h", "d", "s");
        let mut watcher = Watcher::open(&path, 0).unwrap();
        let mut chunk = BytesMut::new();
        let (mut got, mut counted, mut reached) = (Vec::new(), 0, 0);
        while let Some(read) = watcher.read(&config, &origin, &mut chunk, super::MAX_BATCH_EVENTS).unwrap() {
            prop_assert!(
                watcher.partial.capacity() <= max + 1,
                "{} bytes kept of a line for a limit of {}", watcher.partial.capacity(), max
            );
            got.extend(read.events.iter().map(message));
            counted += read.oversize;
            reached = read.end;
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(counted, oversize);
        prop_assert_eq!(reached, end);
    }
}

/// Found by `a_files_lines_come_back_as_written`: the `\r` of a `\r\n`
/// ending counted against `max_line_bytes`, so a line of exactly the limit
/// was counted as too long, and with `skip` it was lost.
#[test]
fn a_line_of_the_limit_ending_in_crlf_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crlf.log");
    std::fs::write(&path, b"12345\r\n123456\r\n").unwrap();
    let mut watcher = Watcher::open(&path, 0).unwrap();
    let origin = Origin::new("h", "d", "s");
    let read = watcher
        .read(
            &config(5, true),
            &origin,
            &mut BytesMut::new(),
            super::MAX_BATCH_EVENTS,
        )
        .unwrap()
        .unwrap();
    let messages: Vec<_> = read.events.iter().map(message).collect();
    assert_eq!(messages, [b"12345".to_vec()]);
    assert_eq!(read.oversize, 1, "only the second line is too long");
}
