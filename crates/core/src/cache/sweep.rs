//! Bulk deletion from Redis: removing this cache's own entries among the names a SCAN finds
//! (`invalidate_pattern` and the repair after an outage), and the unchecked wipe that
//! `clear()` is documented to be.
//!
//! Why ownership is proven key by key: in the default namespace a glob such as `*` also matches
//! other applications' keys in the same database, and in any namespace a name can have been
//! written by someone else. A sweep deletes a key only if it holds a token our keyring opens,
//! bound to that very name (`Codec::owns`). The cost, per batch of `BATCH` names: one round
//! trip of STRLEN + GETRANGE 0 0 (one byte per key, whatever its size; hashes, lists and other
//! types answer WRONGTYPE and are skipped), one MGET of the names whose length and first byte
//! fit a token of ours (so a foreign value larger than our largest token is never fetched), one
//! decryption each, and one UNLINK of those proven ours.
//!
//! Between the proof and the UNLINK another client could replace a value: the two cannot be one
//! atomic step because the application's ACL user has no scripting (`-@scripting` in the ACL
//! we document). Writes of this process are ordered against the repair's deletions in
//! `repair.rs`.

use crate::codec::Codec;
use crate::connection::{group_by_slot, Failure, SecureConnection};
use redis::Value;
use std::collections::HashSet;

/// Names per SCAN step and per batch of checks and UNLINK.
pub const BATCH: usize = 500;

/// Every distinct name matching `pattern` on every primary (SCAN, never KEYS; SCAN may return
/// a name twice).
pub async fn names_matching(
    conn: &SecureConnection,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, Failure> {
    let found = conn.scan(pattern, BATCH, false).await?;
    let mut seen = HashSet::with_capacity(found.len());
    Ok(found
        .into_iter()
        .filter(|name| seen.insert(name.clone()))
        .collect())
}

/// Whether a STRLEN + GETRANGE 0 0 reply pair describes a value that could be our token.
fn plausible(codec: &Codec, strlen: &Value, first: &Value) -> bool {
    let (Value::Int(len), Value::BulkString(first)) = (strlen, first) else {
        return false; // WRONGTYPE (not a string) or gone
    };
    usize::try_from(*len).is_ok_and(|len| codec.could_hold(len, first.first().copied()))
}

/// Of `names`, those provably this cache's entries (see the module doc). Names are bytes:
/// foreign keys need not be UTF-8.
pub async fn owned(
    conn: &SecureConnection,
    codec: &Codec,
    names: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, Failure> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let cluster = conn.topology().is_cluster();
    // One pipeline (or MGET) per hash slot on a cluster, one in all on a single node.
    let shape_pipes: Vec<(Vec<usize>, redis::Pipeline)> = group_by_slot(names, cluster)
        .into_iter()
        .map(|group| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &group {
                pipe.strlen(&names[i]).getrange(&names[i], 0, 0);
            }
            (group, pipe)
        })
        .collect();
    let shapes = conn
        .run(|c| async move {
            futures_util::future::try_join_all(shape_pipes.into_iter().map(|(group, pipe)| {
                let mut c = c.clone();
                async move { Ok((group, pipe.query_async::<Vec<Value>>(&mut c).await?)) }
            }))
            .await
        })
        .await?;
    let candidates: Vec<&Vec<u8>> = shapes
        .iter()
        .flat_map(|(group, replies)| {
            group
                .iter()
                .zip(replies.chunks(2))
                .filter(|(_, pair)| pair.len() == 2 && plausible(codec, &pair[0], &pair[1]))
                .map(|(&i, _)| &names[i])
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mgets: Vec<(Vec<Vec<u8>>, redis::Cmd)> = group_by_slot(&candidates, cluster)
        .into_iter()
        .map(|group| {
            let group: Vec<Vec<u8>> = group.iter().map(|&i| candidates[i].clone()).collect();
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&group);
            (group, cmd)
        })
        .collect();
    let fetched = conn
        .run(|c| async move {
            futures_util::future::try_join_all(mgets.into_iter().map(|(group, cmd)| {
                let mut c = c.clone();
                // MGET answers nil for a name that is gone or no longer a string.
                async move {
                    Ok((
                        group,
                        cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut c).await?,
                    ))
                }
            }))
            .await
        })
        .await?;
    Ok(fetched
        .into_iter()
        .flat_map(|(group, values)| group.into_iter().zip(values))
        .filter_map(|(name, value)| value.filter(|v| codec.owns(&name, v)).map(|_| name))
        .collect())
}

/// UNLINK of `names`, which the caller has already decided may go.
pub async fn unlink(conn: &SecureConnection, names: &[Vec<u8>]) -> Result<(), Failure> {
    if names.is_empty() {
        return Ok(());
    }
    conn.run(|mut c| async move { c.unlink(names).await })
        .await
        .map(|_| ())
}

/// `invalidate_pattern`: the names matching `pattern` that are provably ours, unlinked batch
/// by batch; returns them.
pub async fn unlink_owned_matching(
    conn: &SecureConnection,
    codec: &Codec,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, Failure> {
    let mut removed = Vec::new();
    for batch in names_matching(conn, pattern).await?.chunks(BATCH) {
        let ours = owned(conn, codec, batch).await?;
        unlink(conn, &ours).await?;
        removed.extend(ours);
    }
    Ok(removed)
}

/// `clear()`: every name matching `pattern`, ours or not, unlinked as SCAN finds it; returns
/// them.
pub async fn unlink_all_matching(
    conn: &SecureConnection,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, Failure> {
    conn.scan(pattern, BATCH, true).await
}
