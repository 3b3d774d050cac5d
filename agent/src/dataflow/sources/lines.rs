//! Reading lines with a bound: a line longer than the limit is cut, and the
//! rest of it skipped without being buffered, so one huge line never costs
//! more memory than the limit.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads the next line into `line`, without its `\n` (or `\r\n`), keeping
/// at most `max` bytes. Returns `None` at the end of input, else whether the
/// line was cut.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(cut));
        }
        read_any = true;
        let newline = available.iter().position(|byte| *byte == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = max.saturating_sub(line.len());
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = newline.map_or(available.len(), |at| at + 1);
        reader.consume(consumed);
        if newline.is_some() {
            if line.last() == Some(&b'\r') && !cut {
                line.pop();
            }
            return Ok(Some(cut));
        }
    }
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
}
