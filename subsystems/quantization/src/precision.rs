//! The precision levels and the candle formats behind them.

use candle_core::quantized::GgmlDType;

/// The numeric format of a quantized model's weights.
///
/// `INT8` is ggml's Q8_0 (blocks of 32 `i8` with one f16 scale), `INT4` is Q4_0 (blocks of
/// 32 nibbles with one f16 scale), `Q4K` is ggml's k-quant (super-blocks of 256 with 6-bit
/// sub-block scales and minimums), which keeps more accuracy than Q4_0 at about the same
/// size on heavy-tailed weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrecisionLevel {
    /// 32-bit floats: the reference.
    FP32,
    /// IEEE half floats.
    FP16,
    /// Q8_0: 8-bit integers, one scale per 32 weights.
    INT8,
    /// Q4_0: 4-bit integers, one scale per 32 weights.
    INT4,
    /// Q4_K: 4-bit integers in super-blocks of 256 with quantized scales and minimums.
    Q4K,
}

impl PrecisionLevel {
    /// Every level, from the most to the least precise.
    pub const ALL: [Self; 5] = [Self::FP32, Self::FP16, Self::INT8, Self::INT4, Self::Q4K];

    /// Storage bits per weight, block scales included (Q8_0: 34 bytes per 32 weights;
    /// Q4_0: 18 bytes per 32; Q4_K: 144 bytes per 256).
    pub fn bits_per_weight(self) -> f64 {
        let dtype = self.ggml_dtype();
        (dtype.type_size() * 8) as f64 / dtype.block_size() as f64
    }

    /// The ggml format that stores weights at this level.
    pub fn ggml_dtype(self) -> GgmlDType {
        match self {
            Self::FP32 => GgmlDType::F32,
            Self::FP16 => GgmlDType::F16,
            Self::INT8 => GgmlDType::Q8_0,
            Self::INT4 => GgmlDType::Q4_0,
            Self::Q4K => GgmlDType::Q4K,
        }
    }

    /// The level that stores weights as `dtype`, if any.
    pub fn from_ggml_dtype(dtype: GgmlDType) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.ggml_dtype() == dtype)
    }

    /// Weights per block: every dimension a weight matrix is quantized along must be a
    /// multiple of it.
    pub fn block_size(self) -> usize {
        self.ggml_dtype().block_size()
    }

    /// A short lowercase name (`f32`, `f16`, `q8_0`, `q4_0`, `q4k`), as used in scenario ids.
    pub fn name(self) -> &'static str {
        match self {
            Self::FP32 => "f32",
            Self::FP16 => "f16",
            Self::INT8 => "q8_0",
            Self::INT4 => "q4_0",
            Self::Q4K => "q4k",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_weight_count_the_block_scales() {
        assert_eq!(PrecisionLevel::FP32.bits_per_weight(), 32.0);
        assert_eq!(PrecisionLevel::FP16.bits_per_weight(), 16.0);
        assert_eq!(PrecisionLevel::INT8.bits_per_weight(), 8.5);
        assert_eq!(PrecisionLevel::INT4.bits_per_weight(), 4.5);
        assert_eq!(PrecisionLevel::Q4K.bits_per_weight(), 4.5);
    }

    #[test]
    fn ggml_dtypes_map_back() {
        for p in PrecisionLevel::ALL {
            assert_eq!(PrecisionLevel::from_ggml_dtype(p.ggml_dtype()), Some(p));
        }
        assert_eq!(PrecisionLevel::from_ggml_dtype(GgmlDType::Q5K), None);
    }
}
