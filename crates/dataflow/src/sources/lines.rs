//! Reading lines with a bound: a line longer than the limit is cut, and the
//! rest of it skipped without being buffered, so one huge line never costs
//! more memory than the limit (and one byte: the `\r` of a line of exactly
//! the limit that ends in `\r\n`, dropped when its `\n` arrives).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads the next line into `line`, without its `\n` (or `\r\n`), keeping
/// at most `max` bytes. Returns `None` at the end of input, else whether the
/// line was cut.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    continue_line(reader, line, &[], max).await
}

/// Reads the rest of a line whose first bytes, `start`, were read already,
/// as [`read_line`] reads a whole one.
pub async fn continue_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    start: &[u8],
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    keep(line, start, max);
    let mut length = start.len() as u64;
    let mut last = start.last().copied();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // The input ended inside a line: that line is all there is.
            line.truncate(max);
            return Ok((length > 0).then_some(length > max as u64));
        }
        let newline = memchr::memchr(b'\n', available);
        let chunk = &available[..newline.unwrap_or(available.len())];
        keep(line, chunk, max);
        length += chunk.len() as u64;
        last = chunk.last().copied().or(last);
        let consumed = newline.map_or(available.len(), |at| at + 1);
        reader.consume(consumed);
        if newline.is_some() {
            let content = content_len(length, last);
            line.truncate(content.min(max as u64) as usize);
            return Ok(Some(content > max as u64));
        }
    }
}

/// Appends to `kept`, the part of a line read so far, what fits of `bytes`
/// in `max` bytes and one more (the `\r` a line of `max` bytes may end
/// with). The vector grows as vectors do, but never past that.
pub fn keep(kept: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let limit = max.saturating_add(1);
    let take = bytes.len().min(limit.saturating_sub(kept.len()));
    if kept.capacity() - kept.len() < take {
        let target = kept
            .capacity()
            .saturating_mul(2)
            .clamp(kept.len() + take, limit);
        kept.reserve_exact(target - kept.len());
    }
    kept.extend_from_slice(&bytes[..take]);
}

/// The length of a line that ended with a `\n`, `length` bytes before it
/// with `last` the last of them, without the `\r` of a `\r\n` ending.
pub fn content_len(length: u64, last: Option<u8>) -> u64 {
    length - u64::from(last == Some(b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_cut_and_ended() {
        let input: &[u8] = b"short\r\nthis one is long\nlast";
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut line, 8).await.unwrap(),
            Some(false)
        );
        assert_eq!(line, b"short");
        assert_eq!(
            read_line(&mut reader, &mut line, 8).await.unwrap(),
            Some(true)
        );
        assert_eq!(line, b"this one");
        assert_eq!(
            read_line(&mut reader, &mut line, 8).await.unwrap(),
            Some(false)
        );
        assert_eq!(line, b"last");
        assert_eq!(read_line(&mut reader, &mut line, 8).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_line_of_the_limit_ending_in_crlf_is_whole() {
        // Found by `proptests::lines_come_back_cut_at_the_limit`: the `\r`
        // counted against the limit, so the line was reported cut.
        let input: &[u8] = b"12345\r\nnext\n";
        let mut reader = tokio::io::BufReader::with_capacity(3, input);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut line, 5).await.unwrap(),
            Some(false)
        );
        assert_eq!(line, b"12345");
        assert_eq!(
            read_line(&mut reader, &mut line, 5).await.unwrap(),
            Some(false)
        );
        assert_eq!(line, b"next");
    }
}

#[cfg(test)]
pub(super) mod proptests {
    use proptest::{collection::vec, prelude::*};

    use super::*;
    use datascale_testing as testing;

    /// A limit drawn from `max`, and up to `count` lines as written:
    /// their bytes (no `\n`; a `\r` anywhere), some of about the limit's
    /// length ending in `\r` or not, some long runs of up to `longest` bytes.
    pub fn limit_and_lines(
        max: impl Strategy<Value = usize>,
        longest: usize,
        count: usize,
    ) -> impl Strategy<Value = (usize, Vec<Vec<u8>>)> {
        max.prop_flat_map(move |max| {
            let not_newline = any::<u8>().prop_filter("no newline", |b| *b != b'\n');
            let byte = prop_oneof![4 => not_newline.clone(), 1 => Just(b'\r')];
            let short = vec(byte, 0..60);
            let run = |length| {
                (not_newline.clone(), length, any::<bool>()).prop_map(|(byte, count, cr)| {
                    let mut line = vec![byte; count];
                    line.extend(cr.then_some(b'\r'));
                    line
                })
            };
            let near_limit = run(max.saturating_sub(1)..max + 2);
            let long = run(0..longest);
            (
                Just(max),
                vec(
                    prop_oneof![4 => short, 2 => near_limit, 1 => long],
                    0..count,
                ),
            )
        })
    }

    /// Reads every line of `input` with a buffer of `buffer` bytes.
    fn read_all(input: &[u8], buffer: usize, max: usize) -> Vec<(Vec<u8>, bool, usize)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(buffer, input);
            let mut line = Vec::new();
            let mut lines = Vec::new();
            while let Some(cut) = read_line(&mut reader, &mut line, max).await.unwrap() {
                lines.push((line.clone(), cut, line.capacity()));
            }
            lines
        })
    }

    proptest! {
        #![proptest_config(testing::cases(testing::CASES))]

        /// Written lines come back one by one, each without its `\n` and the
        /// `\r` before it, cut at `max` and said to be cut exactly when their
        /// content is longer; the line kept never holds more than `max + 1`
        /// bytes, however long the line.
        #[test]
        fn lines_come_back_cut_at_the_limit(
            (max, lines) in limit_and_lines(1..200usize, 5_000, 12),
            last_ended in any::<bool>(),
            buffer in 1..64usize,
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (index, line) in lines.iter().enumerate() {
                input.extend_from_slice(line);
                let ended = index + 1 < lines.len() || last_ended;
                let content = match ended {
                    true => {
                        input.push(b'\n');
                        line.strip_suffix(b"\r").unwrap_or(line)
                    }
                    false => line.as_slice(),
                };
                if !ended && line.is_empty() {
                    continue; // nothing after the last newline: no line
                }
                expected.push((content[..content.len().min(max)].to_vec(), content.len() > max));
            }
            let read = read_all(&input, buffer, max);
            let got: Vec<_> = read.iter().map(|(line, cut, _)| (line.clone(), *cut)).collect();
            prop_assert_eq!(got, expected);
            for (_, _, capacity) in &read {
                prop_assert!(*capacity <= max + 1, "kept {} bytes for a limit of {}", capacity, max);
            }
        }

        /// Any bytes at all: every line read is at most `max` bytes and
        /// nothing panics.
        #[test]
        fn arbitrary_bytes_give_bounded_lines(
            input in vec(any::<u8>(), 0..4_000),
            max in 1..100usize,
            buffer in 1..32usize,
        ) {
            for (line, cut, capacity) in read_all(&input, buffer, max) {
                prop_assert!(line.len() <= max);
                prop_assert!(capacity <= max + 1);
                prop_assert!(!cut || line.len() == max, "a cut line keeps `max` bytes");
            }
        }

        /// `keep` appends what fits and no more, and never reserves past
        /// the limit.
        #[test]
        fn keep_stays_within_the_limit(
            chunks in vec(vec(any::<u8>(), 0..300), 0..20),
            max in 0..1_000usize,
        ) {
            let mut kept = Vec::new();
            let mut all = Vec::new();
            for chunk in &chunks {
                keep(&mut kept, chunk, max);
                all.extend_from_slice(chunk);
                prop_assert!(kept.capacity() <= max + 1);
            }
            prop_assert_eq!(&kept[..], &all[..all.len().min(max + 1)]);
        }
    }
}
