//! Q4_0 weights regrouped into 16-row tiles, multiplied by an AVX-512 VNNI kernel.
//!
//! candle 0.11 repacks Q8_0 and Q4_K for its VNNI kernels but multiplies Q4_0 one weight
//! row at a time, unpacking, sign-fixing and widening every 32-weight block on its own
//! (about 15 vector instructions per block and row). Here the same bytes are regrouped so
//! that one 64-byte load holds four weights of each of 16 rows: one `vpdpbusd` then adds
//! 4 x 16 products, and a block's float work (scale, offset, accumulate) is paid once per
//! 16 rows. Nothing is widened or re-encoded: a tile stores each block's 16 `qs` bytes and
//! f16 scale unchanged, 4.5 bits per weight as in the `QTensor`, and converts back to one
//! bit for bit.
//!
//! Q4_0 codes are `q` in 0..16 standing for `(q - 8) * d`. The kernel multiplies the
//! unsigned `q` by activations quantized to i8 per 32-element block (scale `da`), and
//! takes the offset out once per block: `sum((q - 8) a) = sum(q a) - 8 sum(a)`.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml};
use candle_core::{Device, Tensor};

/// Weights per Q4_0 block.
const BLOCK: usize = 32;
/// Bytes of one Q4_0 block in a `QTensor`: an f16 scale, then 16 bytes of two nibbles.
const BLOCK_BYTES: usize = 18;
/// Rows per tile: one 512-bit register holds a 32-bit sum per row.
const TILE_ROWS: usize = 16;
/// Nibble bytes of one block of a tile (16 rows x 16 bytes).
const TILE_BLOCK_BYTES: usize = TILE_ROWS * 16;
/// Multiply-adds below which a matmul stays on the calling thread: about 0.4 ms of kernel
/// time here, against some 30 µs to start and join a scoped thread.
const PARALLEL_MACS: usize = 1 << 26;

/// A Q4_0 weight matrix `[n, k]` in 16-row tiles.
///
/// For tile `t`, block `b`, the 256 nibble bytes are four 64-byte groups `v`; byte
/// `r * 4 + p` of group `v` is byte `4 v + p` of row `16 t + r`'s block `b`, so its low
/// nibble is weight `32 b + 4 v + p` and its high nibble weight `32 b + 16 + 4 v + p`.
#[derive(Debug)]
pub(crate) struct Q4Tiles {
    n: usize,
    k: usize,
    /// `[tile][block][row]` f16 bits of the block scales.
    scales: Vec<u16>,
    /// `[tile][block][group][row][4]` nibble bytes.
    nibbles: Vec<u8>,
}

impl Q4Tiles {
    /// The tiles of `q` when this CPU runs the kernel and `q` is a Q4_0 matrix whose row
    /// count is a multiple of 16; otherwise `None` (candle's kernel then does the work).
    pub(crate) fn from_qtensor(q: &QTensor) -> candle_core::Result<Option<Arc<Self>>> {
        if !kernel_available() || q.dtype() != GgmlDType::Q4_0 {
            return Ok(None);
        }
        let (n, k) = q.shape().dims2()?;
        if n % TILE_ROWS != 0 || k % BLOCK != 0 {
            return Ok(None);
        }
        Ok(Some(Arc::new(Self::from_blocks(&q.data()?, n, k))))
    }

    /// Regroups the row-major Q4_0 blocks of an `[n, k]` matrix.
    fn from_blocks(raw: &[u8], n: usize, k: usize) -> Self {
        let nb = k / BLOCK;
        let mut scales = vec![0u16; n * nb];
        let mut nibbles = vec![0u8; n * nb * 16];
        for (row, blocks) in raw.chunks_exact(nb * BLOCK_BYTES).enumerate() {
            let (t, r) = (row / TILE_ROWS, row % TILE_ROWS);
            for (b, block) in blocks.chunks_exact(BLOCK_BYTES).enumerate() {
                let tb = t * nb + b;
                scales[tb * TILE_ROWS + r] = u16::from_le_bytes([block[0], block[1]]);
                for (v, four) in block[2..].chunks_exact(4).enumerate() {
                    let at = tb * TILE_BLOCK_BYTES + v * 64 + r * 4;
                    nibbles[at..at + 4].copy_from_slice(four);
                }
            }
        }
        Self {
            n,
            k,
            scales,
            nibbles,
        }
    }

    /// The row-major Q4_0 blocks again, byte for byte.
    fn to_blocks(&self) -> Vec<u8> {
        let nb = self.k / BLOCK;
        let mut raw = vec![0u8; self.n * nb * BLOCK_BYTES];
        for (row, blocks) in raw.chunks_exact_mut(nb * BLOCK_BYTES).enumerate() {
            let (t, r) = (row / TILE_ROWS, row % TILE_ROWS);
            for (b, block) in blocks.chunks_exact_mut(BLOCK_BYTES).enumerate() {
                let tb = t * nb + b;
                block[..2].copy_from_slice(&self.scales[tb * TILE_ROWS + r].to_le_bytes());
                for (v, four) in block[2..].chunks_exact_mut(4).enumerate() {
                    let at = tb * TILE_BLOCK_BYTES + v * 64 + r * 4;
                    four.copy_from_slice(&self.nibbles[at..at + 4]);
                }
            }
        }
        raw
    }

    /// The weights as the `QTensor` they came from.
    pub(crate) fn to_qtensor(&self) -> candle_core::Result<QTensor> {
        qtensor_from_ggml(
            GgmlDType::Q4_0,
            &self.to_blocks(),
            vec![self.n, self.k],
            &Device::Cpu,
        )
    }

    /// `x W^T` for a contiguous f32 `x` of shape `[.., k]`, giving `[.., n]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        if dims.last() != Some(&self.k) {
            candle_core::bail!("Q4_0 tiles take [.., {}], got {:?}", self.k, dims);
        }
        let acts = Activations::quantize(&x.flatten_all()?.to_vec1::<f32>()?, self.k);
        let mut out = vec![0f32; acts.rows * self.n];
        // As many threads as candle's kernels use (`CANDLE_NUM_THREADS`), each on its own
        // activation rows, for matmuls big enough to repay the threads' start.
        let threads = candle_core::utils::get_num_threads().min(acts.rows);
        if threads < 2 || acts.rows * self.n * self.k < PARALLEL_MACS {
            kernel(self, &acts, 0, &mut out);
        } else {
            let rows_each = acts.rows.div_ceil(threads);
            std::thread::scope(|s| {
                for (i, chunk) in out.chunks_mut(rows_each * self.n).enumerate() {
                    let acts = &acts;
                    s.spawn(move || kernel(self, acts, i * rows_each, chunk));
                }
            });
        }
        if let Some(last) = dims.last_mut() {
            *last = self.n;
        }
        Tensor::from_vec(out, dims, &Device::Cpu)
    }
}

/// Activation rows quantized per 32-element block to i8: `a ~ q * d`.
#[derive(Debug)]
struct Activations {
    rows: usize,
    /// The i8 codes as their bytes, row-major.
    q: Vec<u8>,
    /// Per block: the scale `d`.
    d: Vec<f32>,
    /// Per block: `8 * d * sum(q)`, the share of the Q4_0 offset.
    offset: Vec<f32>,
}

impl Activations {
    fn quantize(x: &[f32], k: usize) -> Self {
        let blocks = x.len() / BLOCK;
        let mut q = vec![0u8; x.len()];
        let mut d = Vec::with_capacity(blocks);
        let mut offset = Vec::with_capacity(blocks);
        for (src, dst) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)) {
            let max = src.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (a, b) in src.iter().zip(dst.iter_mut()) {
                let code = (a * inv).round() as i8;
                sum += i32::from(code);
                *b = code as u8;
            }
            d.push(scale);
            offset.push(8.0 * scale * sum as f32);
        }
        Self {
            rows: x.len() / k,
            q,
            d,
            offset,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn kernel_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel_available() -> bool {
    false
}

/// `out` = activation rows `first_row..` (as many as `out` holds) times `w^T`.
#[cfg(target_arch = "x86_64")]
fn kernel(w: &Q4Tiles, x: &Activations, first_row: usize, out: &mut [f32]) {
    assert!(
        kernel_available(),
        "Q4_0 tiles exist only where the kernel runs"
    );
    // SAFETY: the CPU has the three features, checked above.
    unsafe { avx512::matmul(w, x, first_row, out) }
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel(_: &Q4Tiles, _: &Activations, _: usize, _: &mut [f32]) {
    unreachable!("Q4_0 tiles are only built on x86_64")
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Activations, BLOCK, Q4Tiles, TILE_BLOCK_BYTES, TILE_ROWS};

    /// `out[r][col] = sum_k x[first_row + r][k] * w[col][k]`, 16 columns at a time.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn matmul(w: &Q4Tiles, x: &Activations, first_row: usize, out: &mut [f32]) {
        let nb = w.k / BLOCK;
        let low = _mm512_set1_epi8(0x0F);
        for t in 0..w.n / TILE_ROWS {
            let tile = &w.nibbles[t * nb * TILE_BLOCK_BYTES..][..nb * TILE_BLOCK_BYTES];
            let scales = &w.scales[t * nb * TILE_ROWS..][..nb * TILE_ROWS];
            // Rows inside the tile loop: the tile (k / 2 + k / 16 bytes a row) stays in
            // cache while every activation row passes over it.
            for (r, row) in (first_row..).take(out.len() / w.n).enumerate() {
                let q = &x.q[row * w.k..][..w.k];
                let d = &x.d[row * nb..][..nb];
                let offset = &x.offset[row * nb..][..nb];
                let mut sum = _mm512_setzero_ps();
                for b in 0..nb {
                    let nib = &tile[b * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
                    let a = &q[b * BLOCK..][..BLOCK];
                    // Two accumulators: the low and high nibbles are independent chains.
                    let (mut lo_dot, mut hi_dot) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    for v in 0..4 {
                        // SAFETY: `nib` holds 256 bytes; group `v` is bytes 64 v..64 v + 64.
                        let packed = unsafe { _mm512_loadu_si512(nib[v * 64..].as_ptr().cast()) };
                        let lo = _mm512_and_si512(packed, low);
                        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(packed), low);
                        let a_lo = _mm512_set1_epi32(four_bytes(&a[4 * v..]));
                        let a_hi = _mm512_set1_epi32(four_bytes(&a[16 + 4 * v..]));
                        lo_dot = _mm512_dpbusd_epi32(lo_dot, lo, a_lo);
                        hi_dot = _mm512_dpbusd_epi32(hi_dot, hi, a_hi);
                    }
                    let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(lo_dot, hi_dot));
                    // d_a * sum(q a) - 8 d_a sum(a), then times each row's weight scale.
                    let shifted =
                        _mm512_fmsub_ps(dot, _mm512_set1_ps(d[b]), _mm512_set1_ps(offset[b]));
                    // SAFETY: `scales` holds 16 f16 values for every block of the tile.
                    let dw = _mm512_cvtph_ps(unsafe {
                        _mm256_loadu_si256(scales[b * TILE_ROWS..][..TILE_ROWS].as_ptr().cast())
                    });
                    sum = _mm512_fmadd_ps(dw, shifted, sum);
                }
                let dst = &mut out[r * w.n + t * TILE_ROWS..][..TILE_ROWS];
                // SAFETY: `dst` holds 16 f32 values.
                unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), sum) };
            }
        }
    }

    /// Four activation codes as one lane of `vpdpbusd`'s signed operand.
    fn four_bytes(a: &[u8]) -> i32 {
        i32::from_le_bytes([a[0], a[1], a[2], a[3]])
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Module;
    use candle_core::quantized::QMatMul;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn random(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect()
    }

    fn q4_0(n: usize, k: usize) -> QTensor {
        let w = Tensor::from_vec(random(n, k, 7), (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, GgmlDType::Q4_0).unwrap()
    }

    /// `x W^T` in f64 with `W` the dequantized weights: the product both kernels approximate.
    fn reference(x: &[f32], q: &QTensor, m: usize) -> Vec<f64> {
        let (n, k) = q.shape().dims2().unwrap();
        let w: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (0..m * n)
            .map(|i| {
                let (row, col) = (i / n, i % n);
                (0..k)
                    .map(|j| f64::from(x[row * k + j]) * f64::from(w[col * k + j]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn regrouping_gives_back_the_same_bytes() {
        let q = q4_0(48, 96);
        let raw = q.data().unwrap().into_owned();
        let tiles = Q4Tiles::from_blocks(&raw, 48, 96);
        assert_eq!(tiles.to_blocks(), raw);
        assert_eq!(
            tiles.to_qtensor().unwrap().data().unwrap().as_ref(),
            &raw[..]
        );
        // Byte 4 v + p of row 16 t + r's block b sits at group v, lane r of the tile block.
        let (row, b, byte) = (21, 2, 9);
        let (t, r, v, p) = (row / 16, row % 16, byte / 4, byte % 4);
        let tb = t * 3 + b;
        assert_eq!(
            tiles.nibbles[tb * TILE_BLOCK_BYTES + v * 64 + r * 4 + p],
            raw[(row * 3 + b) * BLOCK_BYTES + 2 + byte]
        );
    }

    #[test]
    fn tiles_are_built_only_for_q4_0_with_whole_tiles() {
        let q8 = QTensor::quantize(
            &Tensor::from_vec(random(16, 64, 1), (16, 64), &Device::Cpu).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap();
        assert!(Q4Tiles::from_qtensor(&q8).unwrap().is_none());
        assert!(Q4Tiles::from_qtensor(&q4_0(24, 64)).unwrap().is_none());
        assert_eq!(
            Q4Tiles::from_qtensor(&q4_0(32, 64)).unwrap().is_some(),
            kernel_available()
        );
    }

    #[test]
    fn the_kernel_is_exact_on_activations_it_can_represent() {
        if !kernel_available() {
            eprintln!("skipped: this CPU lacks AVX-512 VNNI; candle's kernel runs Q4_0 here");
            return;
        }
        let (m, n, k) = (3, 64, 256);
        let q = q4_0(n, k);
        let tiles = Q4Tiles::from_qtensor(&q)
            .unwrap()
            .expect("kernel available");
        // Integers with a block maximum of 127 quantize to themselves (scale exactly 1).
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let x: Vec<f32> = (0..m * k)
            .map(|i| {
                if i % 32 == 5 {
                    127.0
                } else {
                    rng.random_range(-127i32..=127) as f32
                }
            })
            .collect();
        let out: Vec<f32> = tiles
            .forward(&Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, (&got, want)) in out.iter().zip(reference(&x, &q, m)).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{i}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn the_kernel_is_as_accurate_as_candles() {
        if !kernel_available() {
            eprintln!("skipped: this CPU lacks AVX-512 VNNI; candle's kernel runs Q4_0 here");
            return;
        }
        // The last case is big enough to be split over threads.
        for (m, n, k, seed) in [
            (1, 4096, 64, 11),
            (5, 48, 1024, 12),
            (64, 256, 512, 13),
            (67, 1024, 1024, 14),
        ] {
            let q = q4_0(n, k);
            let x = random(m, k, seed);
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
            let ours = flat(
                Q4Tiles::from_qtensor(&q)
                    .unwrap()
                    .expect("kernel")
                    .forward(&xt)
                    .unwrap(),
            );
            let candle = flat(
                QMatMul::from_qtensor(q4_0(n, k))
                    .unwrap()
                    .forward(&xt)
                    .unwrap(),
            );
            let want = reference(&x, &q, m);
            let err = |got: &[f32]| -> f64 {
                let num: f64 = got
                    .iter()
                    .zip(&want)
                    .map(|(&g, w)| (f64::from(g) - w).powi(2))
                    .sum();
                let den: f64 = want.iter().map(|w| w * w).sum();
                (num / den).sqrt()
            };
            let (ours, candle) = (err(&ours), err(&candle));
            // Both quantize the activations to 8 bits per block, so neither is exact; their
            // errors agree to within a few percent (0.0036 to 0.0038 here).
            assert!(
                ours < 0.01 && ours <= candle * 1.05,
                "[{m}x{k}] x [{k}x{n}]: ours {ours}, candle {candle}"
            );
        }
    }

    #[test]
    fn activations_keep_their_offset_share() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
        let a = Activations::quantize(&x, 64);
        assert_eq!((a.rows, a.d.len()), (1, 2));
        for (b, chunk) in x.chunks(32).enumerate() {
            let codes = &a.q[b * 32..][..32];
            let sum: i32 = codes.iter().map(|&c| i32::from(c as i8)).sum();
            assert_eq!(a.offset[b], 8.0 * a.d[b] * sum as f32);
            for (&v, &c) in chunk.iter().zip(codes) {
                assert!((v - f32::from(c as i8) * a.d[b]).abs() <= a.d[b] / 2.0 + 1e-6);
            }
        }
        let zeros = Activations::quantize(&[0.0; 32], 32);
        assert_eq!((zeros.d[0], zeros.offset[0]), (0.0, 0.0));
    }
}
