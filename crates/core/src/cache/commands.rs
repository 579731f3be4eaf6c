//! The Redis commands the cache issues, one function each over a `RedisHandle` (one node or
//! the slot-aware cluster handle): `generic.rs` keeps the policy (L1, reconciliation,
//! statistics) and never builds a command itself.

use crate::connection::RedisHandle;
use redis::{AsyncCommands, ErrorKind, RedisError, RedisResult, ServerError, Value};

/// A `pttl` of -2 means "no such key" to Redis; used when PTTL was not asked for.
const NO_PTTL: i64 = -2;

/// Stored bytes read in the first round trip: every genuine entry of up to about 750 KB of
/// JSON arrives whole in it. Only a longer value costs more round trips (its length, then,
/// if no longer than any genuine entry, the value), so a planted value past the cap costs
/// this much memory and transfer, not its own size or the cap's.
pub const FIRST_READ_BYTES: usize = 1 << 20;

/// What a read found under a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No such key (or an empty string, which no entry is).
    Absent,
    /// The stored bytes, at most the `max_bytes` the read was given.
    Entry(Vec<u8>),
    /// A string longer than `max_bytes`: not ours, and never read whole. Its length as STRLEN
    /// gave it (or, if it grew before the last read, the `max_bytes` + 1 that read found).
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
/// their PTTL when the L1 copy needs its lifetime (else `NO_PTTL`).
///
/// One pipeline of GETRANGE of the first `FIRST_READ_BYTES` (+ PTTL) per key: as many commands
/// as GET, and every value up to that size complete. Only for longer values, STRLEN in a
/// second round trip and, for those no longer than `max_bytes`, GETRANGE of the whole value
/// in a third (a STRLEN beside every GETRANGE in the first cost get_many about 30 % of its
/// throughput: docs/performance.md). Never GET or MGET: they read a value whole, however
/// large.
/// A key Redis refuses to read is `Refused` alone: its neighbours still read.
pub async fn fetch_entries<S: AsRef<str>>(
    conn: &mut RedisHandle,
    names: &[S],
    with_ttl: bool,
    max_bytes: usize,
) -> RedisResult<Vec<(Stored, i64)>> {
    let name = |index: usize| names[index].as_ref();
    let first = FIRST_READ_BYTES.min(max_bytes);
    let mut pipe = redis::pipe();
    for index in 0..names.len() {
        // GETRANGE's end is inclusive: one byte past `first` tells a complete value from a
        // longer one, in one atomic read.
        pipe.getrange(name(index), 0, end_index(first));
        if with_ttl {
            pipe.pttl(name(index));
        }
    }
    let per_key = if with_ttl { 2 } else { 1 };
    let mut replies = query(conn, &mut pipe, names.len() * per_key)
        .await?
        .into_iter();
    let mut found = Vec::with_capacity(names.len());
    let mut longer = Vec::new();
    while let Some(head) = replies.next() {
        let pttl = match with_ttl.then(|| replies.next()).flatten() {
            Some(Value::Int(ms)) => ms,
            _ => NO_PTTL,
        };
        let stored = match read(head, first) {
            Stored::Oversized(_) => {
                longer.push(found.len());
                Stored::Absent // decided by the reads below
            }
            stored => stored,
        };
        found.push((stored, pttl));
    }
    if longer.is_empty() {
        return Ok(found);
    }
    let mut pipe = redis::pipe();
    for &index in &longer {
        pipe.strlen(name(index));
    }
    let lengths = query(conn, &mut pipe, longer.len()).await?;
    let mut whole = Vec::new();
    for (&index, length) in longer.iter().zip(lengths) {
        match length {
            Value::ServerError(error) => found[index].0 = Stored::Refused(refusal(&error)),
            Value::Int(length) if length > 0 && length.unsigned_abs() > max_bytes as u64 => {
                found[index].0 = Stored::Oversized(length.unsigned_abs());
            }
            _ => whole.push(index),
        }
    }
    if whole.is_empty() {
        return Ok(found);
    }
    let mut pipe = redis::pipe();
    for &index in &whole {
        pipe.getrange(name(index), 0, end_index(max_bytes));
    }
    let values = query(conn, &mut pipe, whole.len()).await?;
    for (&index, value) in whole.iter().zip(values) {
        // This read alone decides: the value may have changed since the others.
        found[index].0 = read(value, max_bytes);
    }
    Ok(found)
}

/// A pipeline's replies, each command's error among them rather than failing them all.
async fn query(
    conn: &mut RedisHandle,
    pipe: &mut redis::Pipeline,
    commands: usize,
) -> RedisResult<Vec<Value>> {
    let replies = pipe.ignore_errors().query_async::<Vec<Value>>(conn).await?;
    if replies.len() == commands {
        Ok(replies)
    } else {
        Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "a pipeline reply had another number of entries than commands",
        )))
    }
}

/// What a GETRANGE of `limit` + 1 bytes found: `Oversized` (with that length) when it filled
/// them all.
fn read(reply: Value, limit: usize) -> Stored {
    let bytes = match reply {
        Value::ServerError(error) => return Stored::Refused(refusal(&error)),
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => Vec::new(),
    };
    if bytes.len() > limit {
        Stored::Oversized(bytes.len() as u64)
    } else if bytes.is_empty() {
        Stored::Absent
    } else {
        Stored::Entry(bytes)
    }
}

/// GETRANGE's inclusive end index for reading `bytes` + 1 bytes.
fn end_index(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

/// The server's error code and message (never our arguments: Redis does not echo them).
fn refusal(error: &ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_owned(),
    }
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

/// SET NX PX: takes the lock `name` for `lease_ms` when nobody holds it; whether we took it.
pub async fn lock_take(
    conn: &mut RedisHandle,
    name: &str,
    token: &[u8],
    lease_ms: u64,
) -> RedisResult<bool> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(name)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(lease_ms)
        .query_async(conn)
        .await?;
    Ok(reply.is_some())
}

/// SET NX without expiry: writes a tenant scope's key record unless one is there; whether it
/// did.
pub async fn record_create(conn: &mut RedisHandle, name: &str, token: &[u8]) -> RedisResult<bool> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(name)
        .arg(token)
        .arg("NX")
        .query_async(conn)
        .await?;
    Ok(reply.is_some())
}

/// Compare-and-delete in one server-side step: the lock goes only while it still holds our
/// token, so a holder whose lease ran out never releases its successor's lock.
const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Releases the lock `name` if it still holds `token`; whether it did.
pub async fn lock_release(conn: &mut RedisHandle, name: &str, token: &[u8]) -> RedisResult<bool> {
    let released: i64 = redis::cmd("EVAL")
        .arg(RELEASE_SCRIPT)
        .arg(1)
        .arg(name)
        .arg(token)
        .query_async(conn)
        .await?;
    Ok(released == 1)
}

/// Adds sealed members to the tag set `name` and makes it live at least `ttl` seconds (NX sets
/// a first expiry, GT only ever extends it), so the set outlives every entry it names.
pub async fn tag_add(
    conn: &mut RedisHandle,
    name: &str,
    members: &[String],
    ttl: u64,
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("SADD").arg(name).arg(members).ignore();
    pipe.cmd("EXPIRE").arg(name).arg(ttl).arg("NX").ignore();
    pipe.cmd("EXPIRE").arg(name).arg(ttl).arg("GT").ignore();
    pipe.query_async::<()>(conn).await
}

/// Takes the members of the tag set `name` and deletes the set in one server-side step, so a
/// member added meanwhile is either taken or stays for the next invalidation, never lost.
const TAKE_SCRIPT: &str =
    "local members = redis.call('SMEMBERS', KEYS[1]) redis.call('DEL', KEYS[1]) return members";

pub async fn tag_take(conn: &mut RedisHandle, name: &str) -> RedisResult<Vec<Vec<u8>>> {
    redis::cmd("EVAL")
        .arg(TAKE_SCRIPT)
        .arg(1)
        .arg(name)
        .query_async(conn)
        .await
}

/// DEL of several keys (one hash slot on a cluster); how many went.
pub async fn remove_many(conn: &mut RedisHandle, names: &[String]) -> RedisResult<i64> {
    conn.del::<_, i64>(names).await
}
