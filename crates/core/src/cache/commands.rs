//! The Redis commands the cache issues, one function each over a `RedisHandle` (one node or
//! the slot-aware cluster handle): `generic.rs` keeps the policy (L1, reconciliation,
//! statistics) and never builds a command itself.

use crate::connection::RedisHandle;
use redis::{AsyncCommands, RedisResult};

/// A `pttl` of -2 means "no such key" to Redis; used when PTTL was not asked for.
const NO_PTTL: i64 = -2;

/// GET, with PTTL in the same round trip when the L1 copy needs its lifetime.
pub async fn fetch_entry(
    conn: &mut RedisHandle,
    key: &str,
    with_ttl: bool,
) -> RedisResult<(Option<Vec<u8>>, i64)> {
    if with_ttl {
        redis::pipe()
            .get(key)
            .pttl(key)
            .query_async::<(Option<Vec<u8>>, i64)>(conn)
            .await
    } else {
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<Vec<u8>>>(conn)
            .await
            .map(|value| (value, NO_PTTL))
    }
}

/// GET + PTTL per key (PTTL bounds the L1 copy's lifetime), or one MGET when there is no L1.
pub async fn fetch_entries(
    conn: &mut RedisHandle,
    names: &[String],
    with_ttl: bool,
) -> redis::RedisResult<Vec<(Option<Vec<u8>>, i64)>> {
    if with_ttl {
        let mut pipe = redis::pipe();
        for name in names {
            pipe.get(name).pttl(name);
        }
        pipe.query_async::<Vec<(Option<Vec<u8>>, i64)>>(conn).await
    } else {
        redis::cmd("MGET")
            .arg(names)
            .query_async::<Vec<Option<Vec<u8>>>>(conn)
            .await
            .map(|values| values.into_iter().map(|v| (v, NO_PTTL)).collect())
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
