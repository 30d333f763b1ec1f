//! The columns of an AVX-512 tile: a row of up to a few vectors of 16 f32, the last one masked to where
//! the row ends, so a kernel needs no scalar tail. How the project's AVX-512 kernels (`depthwise.rs`,
//! `pointwise.rs`) load and store their tiles.

use std::arch::x86_64::*;

/// f32 lanes of one vector.
pub const LANES: usize = 16;

/// A row of `width` values (at least one) as whole vectors: how many, and the mask of the last one.
pub fn split(width: usize) -> (usize, __mmask16) {
    debug_assert!(width > 0);
    let vectors = width.div_ceil(LANES);
    let tail = width - (vectors - 1) * LANES;
    let mask = if tail == LANES {
        0xffff
    } else {
        (1u16 << tail) - 1
    };
    (vectors, mask)
}

/// `V` vectors from `src`, the last one only in the lanes of `mask` (zeros in the others).
///
/// # Safety
/// The CPU has AVX-512F; `src` points at `(V - 1) * LANES` readable values plus the lanes of `mask`.
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn load<const V: usize>(src: *const f32, mask: __mmask16) -> [__m512; V] {
    let mut row = [_mm512_setzero_ps(); V];
    for (v, vector) in row.iter_mut().enumerate() {
        *vector = if v + 1 < V {
            _mm512_loadu_ps(src.add(v * LANES))
        } else {
            _mm512_maskz_loadu_ps(mask, src.add(v * LANES))
        };
    }
    row
}

/// `row` to `dst`, the last vector only in the lanes of `mask`.
///
/// # Safety
/// The CPU has AVX-512F; `dst` points at `(V - 1) * LANES` writable values plus the lanes of `mask`.
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn store<const V: usize>(dst: *mut f32, mask: __mmask16, row: &[__m512; V]) {
    for (v, &vector) in row.iter().enumerate() {
        if v + 1 < V {
            _mm512_storeu_ps(dst.add(v * LANES), vector);
        } else {
            _mm512_mask_storeu_ps(dst.add(v * LANES), mask, vector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_whole_vectors_and_a_masked_last_one() {
        assert_eq!(split(1), (1, 0x0001));
        assert_eq!(split(16), (1, 0xffff));
        assert_eq!(split(17), (2, 0x0001));
        assert_eq!(split(52), (4, 0x000f));
        assert_eq!(split(64), (4, 0xffff));
    }

    #[test]
    fn loads_and_stores_touch_only_the_row() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let src: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let mut dst = vec![-1f32; 48];
        let (vectors, mask) = split(37);
        assert_eq!(vectors, 3);
        // SAFETY: AVX-512F checked above; 37 values readable from `src`, writable in `dst`.
        unsafe {
            let row = load::<3>(src.as_ptr(), mask);
            store::<3>(dst.as_mut_ptr(), mask, &row);
        }
        assert_eq!(&dst[..37], &src[..37]);
        assert!(dst[37..].iter().all(|&v| v == -1.0));
    }
}
