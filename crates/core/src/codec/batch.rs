//! Decoding a batch (`get_many`): large batches are spread over a few threads, since
//! decrypting and decompressing one large value after another on one thread leaves the others
//! idle.

use super::{Codec, DecodeError, Opened};

impl Codec {
    /// `decode` of every `(key, stored)` pair, in order. A batch large enough to be worth a
    /// thread (`PARALLEL_DECODE_BYTES`) is split across up to `MAX_DECODE_THREADS` threads: a
    /// `get_many` of large values would otherwise decrypt and decompress one after another on
    /// one thread while the others idle.
    pub fn decode_many(
        &self,
        items: &[(&str, &[u8])],
        now: u64,
    ) -> Vec<Result<Opened, DecodeError>> {
        let decode_all = |chunk: &[(&str, &[u8])]| -> Vec<Result<Opened, DecodeError>> {
            chunk
                .iter()
                .map(|(key, stored)| self.decode(key, stored, now))
                .collect()
        };
        let total: usize = items.iter().map(|(_, stored)| stored.len()).sum();
        let threads = decode_threads().min(items.len());
        if total < PARALLEL_DECODE_BYTES || threads < 2 {
            return decode_all(items);
        }
        let mut chunks = items.chunks(items.len().div_ceil(threads));
        let first = chunks.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let helpers: Vec<_> = chunks
                .map(|chunk| {
                    std::thread::Builder::new()
                        .name("secure-redis-decode".into())
                        .spawn_scoped(scope, move || decode_all(chunk))
                        .map_err(|_| chunk)
                })
                .collect();
            let mut out = decode_all(first);
            for helper in helpers {
                match helper {
                    Ok(handle) => match handle.join() {
                        Ok(part) => out.extend(part),
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    // No thread to be had: decode that part here.
                    Err(chunk) => out.extend(decode_all(chunk)),
                }
            }
            out
        })
    }
}

/// Stored bytes from which a batch is decoded on several threads: starting a thread costs
/// tens of microseconds, decoding 256 KB about 200.
pub(super) const PARALLEL_DECODE_BYTES: usize = 256 * 1024;
const MAX_DECODE_THREADS: usize = 4;

fn decode_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_DECODE_THREADS)
    })
}
