//! Compression of stored values (LZ4 up to `compression_level` 6, zstd above) and the caps
//! that keep decompression within `max_value_bytes`, so a crafted entry cannot exhaust memory.

use super::{Codec, DecodeError, CODEC_LZ4, CODEC_ZSTD};

impl Codec {
    pub(super) fn decompress_lz4(&self, payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let (size, block) = payload.split_at_checked(4).ok_or(DecodeError::Malformed)?;
        let size =
            u32::from_le_bytes(size.try_into().map_err(|_| DecodeError::Malformed)?) as usize;
        if size > self.max_value_bytes {
            return Err(DecodeError::TooLarge);
        }
        lz4_flex::block::decompress(block, size).map_err(|_| DecodeError::Malformed)
    }

    pub(super) fn decompress(&self, payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
        // Our frames always declare their size: check it against the cap before allocating,
        // then decompress into exactly that much room (more output is an error, not growth).
        let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(payload) else {
            return Err(DecodeError::Malformed);
        };
        if size > self.max_value_bytes as u64 {
            return Err(DecodeError::TooLarge);
        }
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            let decompressor = slot.as_mut().ok_or(DecodeError::Malformed)?;
            decompressor
                .decompress(payload, size as usize)
                .map_err(|_| DecodeError::Malformed)
        })
    }
}

// zstd contexts are costly to create (tens of µs, more than compressing 2 KB), so each
// thread keeps one compressor and one decompressor.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd level for the zlib-style `compression_level` 7..=9: zstd 3, 6 and 9.
pub fn zstd_level(compression_level: i32) -> i32 {
    ((compression_level - 6) * 3).clamp(1, 19)
}

/// Appends `json` compressed to `out` and returns its codec: LZ4 up to level 6, zstd above.
/// None (with `out` in any state past its original length) when compression failed.
pub(super) fn compress_into(json: &[u8], compression_level: i32, out: &mut Vec<u8>) -> Option<u8> {
    if compression_level <= 6 {
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        let block_at = out.len();
        out.resize(
            block_at + lz4_flex::block::get_maximum_output_size(json.len()),
            0,
        );
        let written = lz4_flex::block::compress_into(json, &mut out[block_at..]).ok()?;
        out.truncate(block_at + written);
        return Some(CODEC_LZ4);
    }
    let level = zstd_level(compression_level);
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        let packed = compressor.compress(json).ok()?;
        out.extend_from_slice(&packed);
        Some(CODEC_ZSTD)
    })
}
