//! The files of a disk buffer: numbered segment files of records, appended
//! by one writer and read in order by one reader, and `reader.json`, the
//! position up to which the sink has acknowledged everything (with its
//! newest copy beside it, see [`crate::durable`]).
//!
//! A record is a 12-byte header (payload length, event count, CRC-32C of
//! the count and payload, all little-endian) and its payload. The writer
//! fsyncs before it reports records as written, and never appends to a file
//! it did not create: on open, a torn tail of the newest segment (a crash
//! mid-write) is cut off and a new segment begun. Segments are deleted only
//! once the saved read position has passed them.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::durable::StateFile;

/// Bytes of a record's header.
pub const HEADER_BYTES: u64 = 12;

/// Largest payload a record may claim; a longer claim is damage.
const MAX_PAYLOAD_BYTES: u32 = 1 << 30;

/// CRC-32C, sixteen bytes a step (the crate's bytewise default is several
/// times slower, and every byte of the buffer passes through it twice).
const CHECKSUM: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The name of the file that holds the acknowledged read position.
const POSITION_FILE: &str = "reader.json";

/// A place in the buffer: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// The segment's number.
    pub segment: u64,
    /// Bytes into it.
    pub offset: u64,
}

/// What a buffer directory holds when it is opened.
#[derive(Debug)]
pub struct Opened {
    /// Appends from the first new segment on.
    pub writer: SegmentWriter,
    /// Reads from the acknowledged position on.
    pub reader: SegmentReader,
    /// Events kept and not yet acknowledged.
    pub events: u64,
    /// Bytes of every segment file, the new one included.
    pub bytes: u64,
}

/// Opens (creating it if needed) the buffer in `dir`: deletes segments the
/// saved position has passed, cuts a torn tail off the newest one, counts
/// what is left to read, and begins a new segment for the writer.
pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<Opened> {
    fs::create_dir_all(dir)?;
    let saved = load_position(dir);
    let mut segments = list_segments(dir)?;
    let mut start = saved.unwrap_or_default();
    for &number in segments.iter().filter(|&&number| number < start.segment) {
        fs::remove_file(segment_path(dir, number))?;
    }
    segments.retain(|&number| number >= start.segment);
    if segments.first().is_some_and(|&first| first > start.segment) {
        start = Position {
            segment: segments[0],
            offset: 0,
        };
    }
    if let Some(&newest) = segments.last() {
        cut_torn_tail(&segment_path(dir, newest))?;
    }
    let mut events = 0;
    let mut bytes = 0;
    for &number in &segments {
        let path = segment_path(dir, number);
        bytes += fs::metadata(&path)?.len();
        let from = if number == start.segment {
            start.offset
        } else {
            0
        };
        events += count_events(&path, from)?;
    }
    let next = segments
        .last()
        .map_or(start.segment.max(1), |&newest| newest + 1);
    if segments.is_empty() {
        start = Position {
            segment: next,
            offset: 0,
        };
    }
    let writer = SegmentWriter::create(dir, next, segment_bytes)?;
    Ok(Opened {
        writer,
        reader: SegmentReader {
            dir: dir.to_owned(),
            position: start,
            file: None,
        },
        events,
        bytes,
    })
}

/// The file that holds the acknowledged read position, written atomically.
pub fn position_file(dir: &Path) -> StateFile {
    StateFile::new(&dir.join(POSITION_FILE), 0o600).expect("the position file has a name")
}

/// `position` as the position file holds it.
pub fn encode_position(position: Position, bytes: &mut Vec<u8>) {
    serde_json::to_writer(bytes, &position).expect("a position serializes");
}

/// Deletes the segments before `position`'s, which the saved position has
/// passed; returns the bytes freed.
pub fn delete_before(dir: &Path, position: Position) -> io::Result<u64> {
    let mut freed = 0;
    for number in list_segments(dir)? {
        if number >= position.segment {
            break;
        }
        let path = segment_path(dir, number);
        freed += fs::metadata(&path)?.len();
        fs::remove_file(&path)?;
    }
    Ok(freed)
}

/// The saved position, if there is a readable one: its newest copy, else
/// (a power loss cut it) the durable file.
fn load_position(dir: &Path) -> Option<Position> {
    let file = position_file(dir);
    let newest = fs::read(file.newest_path())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if newest.is_some() {
        return newest;
    }
    let path = file.path();
    match fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(position) => Some(position),
            Err(err) => {
                warn!(path = %path.display(), error = %err, "The disk buffer's read position is unreadable; reading from its oldest segment.");
                None
            }
        },
        Err(_) => None,
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

/// The numbers of the segment files in `dir`, oldest first.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_suffix(".seg"))
            .and_then(|stem| stem.parse::<u64>().ok());
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// One record as stored: its event count and payload.
#[derive(Debug)]
pub struct Record {
    /// Events in the payload.
    pub events: u32,
    /// The events, as the writer encoded them.
    pub payload: Vec<u8>,
    /// Where it starts.
    pub start: Position,
    /// Where the next record starts.
    pub end: Position,
}

/// What reading a record at some offset found.
enum Found {
    /// A whole record with a good checksum, and its length on disk.
    Record(u32, Vec<u8>, u64),
    /// Nothing more: the end of the file.
    End,
    /// A torn or damaged record: what follows cannot be trusted.
    Damaged(&'static str),
}

fn read_record(file: &mut File) -> io::Result<Found> {
    let mut header = Vec::with_capacity(HEADER_BYTES as usize);
    match file.take(HEADER_BYTES).read_to_end(&mut header)? {
        0 => return Ok(Found::End),
        n if n < HEADER_BYTES as usize => return Ok(Found::Damaged("a torn record header")),
        _ => {}
    }
    let field = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let (length, events, checksum) = (field(0), field(4), field(8));
    if length > MAX_PAYLOAD_BYTES {
        return Ok(Found::Damaged("a record length past any the writer makes"));
    }
    let mut payload = Vec::with_capacity(length as usize);
    if file.take(u64::from(length)).read_to_end(&mut payload)? < length as usize {
        return Ok(Found::Damaged("a torn record"));
    }
    if checksum_of(events, &payload) != checksum {
        return Ok(Found::Damaged("a record whose checksum does not match"));
    }
    Ok(Found::Record(
        events,
        payload,
        HEADER_BYTES + u64::from(length),
    ))
}

fn checksum_of(events: u32, payload: &[u8]) -> u32 {
    let mut digest = CHECKSUM.digest();
    digest.update(&events.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

/// Cuts the file after its last whole, intact record.
fn cut_torn_tail(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut good = 0;
    loop {
        match read_record(&mut file)? {
            Found::Record(_, _, length) => good += length,
            Found::End => return Ok(()),
            Found::Damaged(what) => {
                warn!(path = %path.display(), offset = good, damage = what, "Cutting a torn tail off a disk buffer segment (the process stopped mid-write; those events were never acknowledged).");
                file.set_len(good)?;
                return file.sync_all();
            }
        }
    }
}

/// Events of the intact records of a segment from `offset` on.
fn count_events(path: &Path, offset: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut events = 0;
    while let Found::Record(count, _, _) = read_record(&mut file)? {
        events += u64::from(count);
    }
    Ok(events)
}

/// Appends records to the newest segment, beginning a new one when it is full.
#[derive(Debug)]
pub struct SegmentWriter {
    dir: PathBuf,
    file: File,
    number: u64,
    length: u64,
    segment_bytes: u64,
    /// Bytes appended since the last sync.
    unsynced: bool,
}

impl SegmentWriter {
    fn create(dir: &Path, number: u64, segment_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(segment_path(dir, number))?;
        File::open(dir)?.sync_all()?;
        Ok(Self {
            dir: dir.to_owned(),
            file,
            number,
            length: 0,
            segment_bytes,
            unsynced: false,
        })
    }

    /// Where the next record goes.
    pub fn position(&self) -> Position {
        Position {
            segment: self.number,
            offset: self.length,
        }
    }

    /// Appends one record (not yet durable: see [`SegmentWriter::sync`]);
    /// the bytes it takes on disk. On failure the segment is cut back to
    /// where it was, so no partial record stays behind.
    pub fn append(&mut self, events: u32, payload: &[u8]) -> io::Result<u64> {
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&length| length <= MAX_PAYLOAD_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a batch over 1 GiB"))?;
        let mut header = [0u8; HEADER_BYTES as usize];
        header[0..4].copy_from_slice(&length.to_le_bytes());
        header[4..8].copy_from_slice(&events.to_le_bytes());
        header[8..12].copy_from_slice(&checksum_of(events, payload).to_le_bytes());
        let written = self
            .file
            .write_all(&header)
            .and_then(|()| self.file.write_all(payload));
        if let Err(err) = written {
            let _ = self.file.set_len(self.length);
            return Err(err);
        }
        let bytes = HEADER_BYTES + u64::from(length);
        self.length += bytes;
        self.unsynced = true;
        Ok(bytes)
    }

    /// Makes what was appended durable, then begins a new segment when this
    /// one is full; the bytes of a new segment file are 0.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        if self.length >= self.segment_bytes {
            *self = Self::create(&self.dir, self.number + 1, self.segment_bytes)?;
        }
        Ok(())
    }

    /// Cuts the segment back to `position` (records appended after it whose
    /// sync failed, which were never acknowledged).
    pub fn cut_back(&mut self, position: Position) -> io::Result<()> {
        if position.segment == self.number && position.offset < self.length {
            self.file.set_len(position.offset)?;
            self.length = position.offset;
        }
        Ok(())
    }
}

/// Reads records in order, up to what the writer has made durable.
#[derive(Debug)]
pub struct SegmentReader {
    dir: PathBuf,
    position: Position,
    file: Option<File>,
}

impl SegmentReader {
    /// Where the next record is read.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Reads from `position` on again (a record there was not delivered).
    pub fn rewind(&mut self, position: Position) {
        self.position = position;
        self.file = None;
    }

    /// The next record before `durable` (the writer's synced position), or
    /// `None` when there is none yet. A damaged record in an older segment
    /// (the disk's fault, since it was synced) is reported and the rest of
    /// that segment skipped.
    pub fn next(&mut self, durable: Position) -> io::Result<Option<Record>> {
        while self.position < durable {
            let start = self.position;
            let file = match &mut self.file {
                Some(file) => file,
                None => {
                    let path = segment_path(&self.dir, start.segment);
                    let mut file = match File::open(&path) {
                        Ok(file) => file,
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {
                            self.next_segment();
                            continue;
                        }
                        Err(err) => return Err(err),
                    };
                    file.seek(SeekFrom::Start(start.offset))?;
                    self.file.insert(file)
                }
            };
            match read_record(file)? {
                Found::Record(events, payload, length) => {
                    self.position.offset += length;
                    return Ok(Some(Record {
                        events,
                        payload,
                        start,
                        end: self.position,
                    }));
                }
                Found::End if start.segment < durable.segment => self.next_segment(),
                Found::End => return Ok(None),
                Found::Damaged(what) => {
                    warn!(dir = %self.dir.display(), segment = start.segment, offset = start.offset, damage = what, "A disk buffer segment is damaged; skipping the rest of it.");
                    if start.segment == durable.segment {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
                    }
                    self.next_segment();
                }
            }
        }
        Ok(None)
    }

    fn next_segment(&mut self) {
        self.position = Position {
            segment: self.position.segment + 1,
            offset: 0,
        };
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_position(dir: &Path, position: Position) -> io::Result<()> {
        let mut bytes = Vec::new();
        encode_position(position, &mut bytes);
        position_file(dir).write(&bytes)
    }

    fn write(writer: &mut SegmentWriter, payloads: &[&str]) {
        for payload in payloads {
            writer.append(1, payload.as_bytes()).unwrap();
            writer.sync().unwrap();
        }
    }

    fn read_all(reader: &mut SegmentReader, durable: Position) -> Vec<String> {
        let mut read = Vec::new();
        while let Some(record) = reader.next(durable).unwrap() {
            read.push(String::from_utf8(record.payload).unwrap());
        }
        read
    }

    #[test]
    fn records_are_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            mut writer,
            mut reader,
            ..
        } = open(dir.path(), 40).unwrap();
        write(&mut writer, &["one", "two", "three", "four"]);
        assert!(list_segments(dir.path()).unwrap().len() > 1);
        assert_eq!(
            read_all(&mut reader, writer.position()),
            ["one", "two", "three", "four"]
        );
        assert_eq!(reader.position(), writer.position());
    }

    #[test]
    fn a_reopened_buffer_reads_on_from_the_saved_position() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 40).unwrap();
        let (mut writer, mut reader) = (first.writer, first.reader);
        write(&mut writer, &["one", "two", "three", "four", "five"]);
        let record = reader.next(writer.position()).unwrap().unwrap();
        let second = reader.next(writer.position()).unwrap().unwrap();
        assert_eq!(second.start, record.end);
        save_position(dir.path(), second.end).unwrap();
        drop((writer, reader));

        let again = open(dir.path(), 40).unwrap();
        assert_eq!(again.events, 3, "three records were not acknowledged");
        let (writer, mut reader) = (again.writer, again.reader);
        assert_eq!(
            read_all(&mut reader, writer.position()),
            ["three", "four", "five"]
        );
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_records_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 1 << 20).unwrap();
        let mut writer = first.writer;
        write(&mut writer, &["kept", "torn"]);
        let path = segment_path(dir.path(), writer.position().segment);
        let length = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 2)
            .unwrap();
        drop((writer, first.reader));

        let again = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(again.events, 1);
        let (writer, mut reader) = (again.writer, again.reader);
        assert_eq!(read_all(&mut reader, writer.position()), ["kept"]);
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 1 << 20).unwrap();
        let mut writer = first.writer;
        write(&mut writer, &["good", "flipped"]);
        let path = segment_path(dir.path(), writer.position().segment);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        drop((writer, first.reader));

        let again = open(dir.path(), 1 << 20).unwrap();
        let (writer, mut reader) = (again.writer, again.reader);
        assert_eq!(read_all(&mut reader, writer.position()), ["good"]);
    }

    #[test]
    fn segments_before_the_saved_position_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            mut writer,
            mut reader,
            bytes,
            ..
        } = open(dir.path(), 30).unwrap();
        assert_eq!(bytes, 0);
        write(&mut writer, &["one", "two", "three"]);
        let before = list_segments(dir.path()).unwrap().len();
        let mut last = None;
        while let Some(record) = reader.next(writer.position()).unwrap() {
            last = Some(record.end);
        }
        let end = last.unwrap();
        save_position(dir.path(), end).unwrap();
        let freed = delete_before(dir.path(), end).unwrap();
        assert!(freed > 0);
        let after = list_segments(dir.path()).unwrap();
        assert!(after.len() < before, "{after:?}");
        assert!(after.iter().all(|&number| number >= end.segment));
    }

    #[test]
    fn nothing_is_read_past_what_the_writer_synced() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            mut writer,
            mut reader,
            ..
        } = open(dir.path(), 1 << 20).unwrap();
        let durable = writer.position();
        writer.append(1, b"unsynced").unwrap();
        assert!(reader.next(durable).unwrap().is_none());
        writer.sync().unwrap();
        assert_eq!(read_all(&mut reader, writer.position()), ["unsynced"]);
    }
}
