//! What the property tests share: the number of cases to run, and a heap
//! meter, so that a test can assert how much a parser allocated while it
//! read hostile input, not only that it returned.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use proptest::{collection::btree_map, prelude::*, test_runner::Config};
use serde_json::{Map, Value};

/// The cases of a property test whose cases are cheap, as in proptest's
/// own default.
pub const CASES: u32 = 256;

/// The configuration of a property test: `cases` cases, or as many as
/// `PROPTEST_CASES` asks for. Slow tests (files, SQLite, archives) ask for
/// fewer than [`CASES`].
///
/// Failing cases are not written to `proptest-regressions/` beside the
/// sources: a shrunk case of bytes can be hundreds of kilobytes there, and
/// a test run should not change the tree. proptest prints the minimal
/// failing input; a bug it finds keeps a named regression test instead.
pub fn cases(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, nested a few levels: what a client may send as a field.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A JSON object of a few fields: an event as a client sends it.
pub fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("[a-z_]{1,8}|\\PC{0,8}", json_value(), 0..5)
        .prop_map(|fields| fields.into_iter().collect())
}

/// Generated events as NDJSON: `\n` or `\r\n` after each line, blank lines
/// between some.
pub fn ndjson(events: &[Map<String, Value>], crlf: &[bool], blank: &[bool]) -> Vec<u8> {
    let mut body = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if blank.get(index).copied().unwrap_or_default() {
            body.extend_from_slice(b"  \n");
        }
        serde_json::to_writer(&mut body, event).unwrap();
        body.extend_from_slice(match crlf.get(index).copied().unwrap_or_default() {
            true => b"\r\n",
            false => b"\n",
        });
    }
    body
}

/// Text for a parser of some syntax: any printable text, or `tokens` of
/// that syntax strung together, which a parser gets further into.
pub fn text_or_tokens(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,300}",
        proptest::collection::vec(proptest::sample::select(tokens), 0..60)
            .prop_map(|parts| parts.concat()),
    ]
}

/// The deepest nesting serde_json reads (its recursion limit); deeper JSON
/// is refused by every parser built on it.
pub const JSON_DEPTH_LIMIT: usize = 128;

/// JSON text nested `depth` levels deep, in arrays or in objects: no
/// parser may recurse that deep on a thread's stack.
pub fn deeply_nested(depth: usize, objects: bool) -> String {
    let (open, close) = match objects {
        true => ("{\"a\":", "}"),
        false => ("[", "]"),
    };
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

/// Runs `work` on a thread with the stack of a runtime's worker (2 MiB),
/// where the API parses what it is sent, so that a parser that recurses
/// too deep fails the test instead of passing on a bigger stack.
pub fn on_worker_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(work)
        .unwrap()
        .join()
        .expect("the work panicked")
}

thread_local! {
    /// Whether allocations on this thread are being counted.
    static METERED: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated and not freed on this thread since metering began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` has been since metering began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting what the metered threads allocate.
struct Meter;

#[global_allocator]
static METER: Meter = Meter;

fn count(delta: isize) {
    // `try_with`: the cells have no destructor, but a thread being torn
    // down must never make the allocator panic.
    let _ = METERED.try_with(|metered| {
        if metered.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            PEAK.set(PEAK.get().max(live));
        }
    });
}

#[expect(
    unsafe_code,
    reason = "a global allocator implements an unsafe trait; every call goes to the system allocator unchanged"
)]
// SAFETY: each method forwards its arguments to `System` as they came, so
// `System`'s guarantees are this allocator's; counting touches only
// thread-local cells and never allocates.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's guarantees about `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as in `dealloc`, and the caller's guarantees about `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `work` and returns its result with the most heap it held at once,
/// in bytes, on this thread (what it allocated and had not yet freed).
/// Work handed to other threads is not counted: run it on this one.
pub fn peak_heap<T>(work: impl FnOnce() -> T) -> (T, usize) {
    METERED.set(false);
    LIVE.set(0);
    PEAK.set(0);
    METERED.set(true);
    let result = work();
    METERED.set(false);
    (result, PEAK.get().max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_sees_what_a_closure_holds_at_once() {
        let ((), peak) = peak_heap(|| {
            let first = vec![0u8; 100_000];
            drop(first);
            let second = vec![0u8; 50_000];
            std::hint::black_box(&second);
        });
        assert!((100_000..110_000).contains(&peak), "{peak}");
        let (kept, peak) = peak_heap(|| vec![1u8; 1_000]);
        assert!(peak >= kept.len(), "{peak}");
    }
}
