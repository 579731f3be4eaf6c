//! The Redis commands the cache issues, one function each over a `RedisHandle` (one node or
//! the slot-aware cluster handle): `generic.rs` keeps the policy (L1, reconciliation,
//! statistics) and never builds a command itself.

use crate::connection::RedisHandle;
use redis::{AsyncCommands, ErrorKind, RedisError, RedisResult, ServerError, Value};

/// A `pttl` of -2 means "no such key" to Redis; used when PTTL was not asked for.
const NO_PTTL: i64 = -2;

/// Stored bytes read in the first round trip. A longer value is read whole in a second one,
/// after STRLEN has shown it is not longer than any genuine entry; so a planted value past the
/// cap costs this much memory and transfer, not its own size or the cap's.
pub const FIRST_READ_BYTES: usize = 1 << 20;

/// What a read found under a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No such key (or an empty string, which no entry is).
    Absent,
    /// The stored bytes, at most the `max_bytes` the read was given.
    Entry(Vec<u8>),
    /// A string longer than `max_bytes`: not ours, and never read whole. Its length as STRLEN
    /// gave it (or, if it grew between two reads, the `max_bytes` + 1 the second one read).
    Oversized(u64),
    /// Redis refused to read this key (WRONGTYPE: a hash or a list under the name); the
    /// server's error code and message.
    Refused(String),
}

/// `fetch_entries` for one key.
pub async fn fetch_entry(
    conn: &mut RedisHandle,
    key: &str,
    with_ttl: bool,
    max_bytes: usize,
) -> RedisResult<(Stored, i64)> {
    let mut found = fetch_entries(conn, &[key], with_ttl, max_bytes).await?;
    Ok(found.pop().unwrap_or((Stored::Absent, NO_PTTL)))
}

/// The entries under `names`, none read past `max_bytes` (the longest genuine entry), with
/// their PTTL when the L1 copy needs its lifetime (else `NO_PTTL`). One pipeline of STRLEN +
/// GETRANGE of the first `FIRST_READ_BYTES` (+ PTTL) per key; values longer than that and not
/// longer than `max_bytes` are read in a second. Not MGET or GET: they read a value whole,
/// however large. A key Redis refuses to read is `Refused` alone: its neighbours still read.
pub async fn fetch_entries<S: AsRef<str>>(
    conn: &mut RedisHandle,
    names: &[S],
    with_ttl: bool,
    max_bytes: usize,
) -> RedisResult<Vec<(Stored, i64)>> {
    let first = FIRST_READ_BYTES.min(max_bytes);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for name in names.iter().map(AsRef::as_ref) {
        // GETRANGE's end is inclusive: one byte past `first` tells a complete value from a
        // longer one, in the same atomic read.
        pipe.strlen(name).getrange(name, 0, end_index(first));
        if with_ttl {
            pipe.pttl(name);
        }
    }
    let mut replies = pipe.query_async::<Vec<Value>>(conn).await?.into_iter();
    let mut found = Vec::with_capacity(names.len());
    let mut longer = Vec::new();
    for index in 0..names.len() {
        let (Some(length), Some(head)) = (replies.next(), replies.next()) else {
            return Err(short_reply());
        };
        let pttl = if with_ttl {
            match replies.next() {
                Some(Value::Int(ms)) => ms,
                Some(_) => NO_PTTL,
                None => return Err(short_reply()),
            }
        } else {
            NO_PTTL
        };
        let stored = match (length, head) {
            (Value::ServerError(error), _) | (_, Value::ServerError(error)) => {
                Stored::Refused(refusal(&error))
            }
            (length, head) => match bytes_of(head) {
                bytes if bytes.len() <= first => present(bytes),
                _ => match length_of(length) {
                    Some(length) if length > max_bytes as u64 => Stored::Oversized(length),
                    _ => {
                        longer.push(index); // filled in by the second read
                        Stored::Absent
                    }
                },
            },
        };
        found.push((stored, pttl));
    }
    if !longer.is_empty() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for &index in &longer {
            pipe.getrange(names[index].as_ref(), 0, end_index(max_bytes));
        }
        let replies = pipe.query_async::<Vec<Value>>(conn).await?;
        if replies.len() != longer.len() {
            return Err(short_reply());
        }
        for (&index, reply) in longer.iter().zip(replies) {
            // This read alone decides: the value may have changed since STRLEN measured it.
            found[index].0 = match reply {
                Value::ServerError(error) => Stored::Refused(refusal(&error)),
                reply => match bytes_of(reply) {
                    bytes if bytes.len() > max_bytes => Stored::Oversized(bytes.len() as u64),
                    bytes => present(bytes),
                },
            };
        }
    }
    Ok(found)
}

/// GETRANGE's inclusive end index for reading `bytes` + 1 bytes.
fn end_index(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

fn present(bytes: Vec<u8>) -> Stored {
    if bytes.is_empty() {
        Stored::Absent
    } else {
        Stored::Entry(bytes)
    }
}

fn bytes_of(reply: Value) -> Vec<u8> {
    match reply {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => Vec::new(),
    }
}

fn length_of(reply: Value) -> Option<u64> {
    match reply {
        Value::Int(length) => u64::try_from(length).ok(),
        _ => None,
    }
}

/// The server's error code and message (never our arguments: Redis does not echo them).
fn refusal(error: &ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_owned(),
    }
}

fn short_reply() -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "a pipeline reply had fewer entries than commands",
    ))
}

/// SET with EX: the entry and its Redis TTL in one command.
pub async fn store(conn: &mut RedisHandle, key: &str, token: &[u8], ttl: u64) -> RedisResult<()> {
    conn.set_ex::<_, _, ()>(key, token, ttl).await
}

/// SET EX for every entry of a batch in one pipeline (the caller groups a cluster's batch by
/// hash slot).
pub async fn store_many(
    conn: &mut RedisHandle,
    batch: &[(String, Vec<u8>)],
    ttl: u64,
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for (key, token) in batch {
        pipe.set_ex(key, token, ttl).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// DEL; how many keys went (0 or 1).
pub async fn remove(conn: &mut RedisHandle, key: &str) -> RedisResult<i64> {
    conn.del::<_, i64>(key).await
}

pub async fn exists(conn: &mut RedisHandle, key: &str) -> RedisResult<bool> {
    conn.exists::<_, bool>(key).await
}

/// PTTL in milliseconds; -2 for a missing key, -1 for one without expiry.
pub async fn pttl(conn: &mut RedisHandle, key: &str) -> RedisResult<i64> {
    conn.pttl::<_, i64>(key).await
}

pub async fn ping(conn: &mut RedisHandle) -> RedisResult<String> {
    redis::cmd("PING").query_async::<String>(conn).await
}
