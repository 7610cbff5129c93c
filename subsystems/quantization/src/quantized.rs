//! `QuantizedModel`: the MLP stack with every linear layer in a candle `QMatMul`.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::error::QuantizationError;
use crate::model::{
    Model, check_input, gguf_norm_eps, layer_names, mlp_block, open_gguf, write_gguf,
};
use crate::precision::PrecisionLevel;
use crate::tiles::Q4Tiles;

/// One quantized MLP block.
#[derive(Debug, Clone)]
pub(crate) struct QuantizedLayer {
    pub(crate) norm: Tensor,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// A linear layer's weights in the form its matmul reads.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    /// Candle's matmul: gemm on dense f32/f16, its integer kernels on a `QTensor`.
    Candle(QMatMul),
    /// Q4_0 in 16-row tiles for the AVX-512 VNNI kernel, where the CPU has one.
    Q4Tiles(Arc<Q4Tiles>),
}

impl Linear {
    /// A quantized matrix: Q4_0 goes to tiles where the kernel runs, the rest to candle.
    fn from_qtensor(q: QTensor) -> candle_core::Result<Self> {
        Ok(match Q4Tiles::from_qtensor(&q)? {
            Some(tiles) => Self::Q4Tiles(tiles),
            None => Self::Candle(QMatMul::from_qtensor(q)?),
        })
    }

    /// `x W^T` for a contiguous f32 `x` of shape `[.., in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Q4Tiles(t) => t.forward(x),
        }
    }
}

/// A model whose linear layers are stored at one precision and run by candle's kernels:
/// f32 and f16 weights as dense matrices (gemm), Q8_0, Q4_0 and Q4_K as `QTensor`s whose
/// matmul quantizes the activations to 8 bits and takes integer dot products.
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    precision: PrecisionLevel,
    hidden: usize,
    ffn: usize,
    norm_eps: f64,
    layers: Vec<QuantizedLayer>,
}

/// `weight` (`[out, in]`, f32) at `precision`, ready for `QMatMul::forward`.
pub(crate) fn quantize_weight(
    weight: &Tensor,
    precision: PrecisionLevel,
) -> Result<Linear, QuantizationError> {
    let block = precision.block_size();
    if let Some(&dim) = weight.dims().last()
        && dim % block != 0
    {
        return Err(QuantizationError::BlockSize {
            precision,
            block,
            dim,
        });
    }
    Ok(match precision {
        PrecisionLevel::FP32 => Linear::Candle(QMatMul::Tensor(weight.to_dtype(DType::F32)?)),
        // `QMatMul::from_qtensor` would widen an F16 tensor back to f32; keep it half so that
        // the matmul reads half the bytes.
        PrecisionLevel::FP16 => Linear::Candle(QMatMul::TensorF16(weight.to_dtype(DType::F16)?)),
        PrecisionLevel::INT8 | PrecisionLevel::INT4 | PrecisionLevel::Q4K => {
            Linear::from_qtensor(QTensor::quantize(weight, precision.ggml_dtype())?)?
        }
    })
}

/// One linear layer (`y = x W^T`) stored at one precision: the matmul of a
/// [`QuantizedModel`], on its own.
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    precision: PrecisionLevel,
    out_features: usize,
    in_features: usize,
    inner: Linear,
}

impl QuantizedLinear {
    /// `weight` (`[out, in]`, any float dtype) stored at `precision`; `in` must be a
    /// multiple of the format's block size.
    pub fn new(weight: &Tensor, precision: PrecisionLevel) -> Result<Self, QuantizationError> {
        let (out_features, in_features) = weight.dims2()?;
        Ok(Self {
            precision,
            out_features,
            in_features,
            inner: quantize_weight(weight, precision)?,
        })
    }

    /// `x W^T` for `x` of shape `[.., in]` (f32), giving `[.., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, QuantizationError> {
        let x = check_input(x, self.in_features)?;
        Ok(self.inner.forward(&x)?)
    }

    /// The weights' precision.
    pub fn precision(&self) -> PrecisionLevel {
        self.precision
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_features, self.in_features)
    }

    /// The weights read back as f32, `[out, in]`.
    pub fn dequantized_weight(&self) -> Result<Tensor, QuantizationError> {
        dequantize(&self.inner)
    }
}

/// `values` stored at `precision` and read back: what a weight row becomes after
/// quantization. Its length must be a multiple of the format's block size.
pub fn round_trip(
    values: &[f32],
    precision: PrecisionLevel,
) -> Result<Vec<f32>, QuantizationError> {
    let t = Tensor::from_slice(values, (1, values.len()), &Device::Cpu)?;
    Ok(dequantize(&quantize_weight(&t, precision)?)?
        .flatten_all()?
        .to_vec1()?)
}

/// The weights of `m` as candle stores them, as a `QTensor` (for GGUF files).
fn to_qtensor(m: &Linear) -> Result<Arc<QTensor>, QuantizationError> {
    Ok(match m {
        Linear::Candle(QMatMul::QTensor(q)) => Arc::clone(q),
        Linear::Candle(QMatMul::Tensor(t)) => Arc::new(QTensor::quantize(t, GgmlDType::F32)?),
        Linear::Candle(QMatMul::TensorF16(t)) => Arc::new(QTensor::quantize(t, GgmlDType::F16)?),
        Linear::Q4Tiles(t) => Arc::new(t.to_qtensor()?),
    })
}

/// The weights of `m` back in f32, `[out, in]`.
pub(crate) fn dequantize(m: &Linear) -> Result<Tensor, QuantizationError> {
    Ok(match m {
        Linear::Candle(QMatMul::QTensor(q)) => q.dequantize(&Device::Cpu)?,
        Linear::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => t.to_dtype(DType::F32)?,
        Linear::Q4Tiles(t) => t.to_qtensor()?.dequantize(&Device::Cpu)?,
    })
}

impl QuantizedModel {
    /// Quantizes every linear layer of `model` to `precision`; norms stay f32.
    pub fn from_model(model: &Model, precision: PrecisionLevel) -> Result<Self, QuantizationError> {
        let layers = model
            .layers()
            .iter()
            .map(|l| {
                Ok(QuantizedLayer {
                    norm: l.norm.clone(),
                    up: quantize_weight(&l.up, precision)?,
                    down: quantize_weight(&l.down, precision)?,
                })
            })
            .collect::<Result<Vec<_>, QuantizationError>>()?;
        Ok(Self {
            precision,
            hidden: model.hidden(),
            ffn: model.ffn(),
            norm_eps: model.norm_eps(),
            layers,
        })
    }

    /// Loads a GGUF file written by [`QuantizedModel::save_gguf`] (or any file with the same
    /// tensor names) without dequantizing it. Every linear layer must use the same format.
    pub fn from_gguf(path: &Path) -> Result<Self, QuantizationError> {
        let (content, mut reader) = open_gguf(path)?;
        let eps = gguf_norm_eps(&content);
        let mut layers = Vec::new();
        let mut precision = None;
        let mut dims = None;
        loop {
            let [norm_name, up_name, down_name] = layer_names(layers.len());
            if !content.tensor_infos.contains_key(&up_name) {
                break;
            }
            let mut linear = |name: &str| -> Result<(Linear, (usize, usize)), QuantizationError> {
                let q = content.tensor(&mut reader, name, &Device::Cpu)?;
                let p = PrecisionLevel::from_ggml_dtype(q.dtype()).ok_or_else(|| {
                    QuantizationError::Format(format!(
                        "{name} is {:?}, not a supported format",
                        q.dtype()
                    ))
                })?;
                if *precision.get_or_insert(p) != p {
                    return Err(QuantizationError::Format(format!(
                        "{name} is {p:?} but earlier layers are {precision:?}"
                    )));
                }
                let shape = q.shape().dims2()?;
                let m = match p {
                    PrecisionLevel::FP32 => {
                        Linear::Candle(QMatMul::Tensor(q.dequantize(&Device::Cpu)?))
                    }
                    PrecisionLevel::FP16 => {
                        Linear::Candle(QMatMul::TensorF16(q.dequantize_f16(&Device::Cpu)?))
                    }
                    _ => Linear::from_qtensor(q)?,
                };
                Ok((m, shape))
            };
            let (up, (f, h)) = linear(&up_name)?;
            let (down, down_shape) = linear(&down_name)?;
            if down_shape != (h, f) || dims.is_some_and(|d| d != (h, f)) {
                return Err(QuantizationError::Format(format!(
                    "block {} has up [{f}, {h}] and down {down_shape:?}, inconsistent with the model",
                    layers.len()
                )));
            }
            dims = Some((h, f));
            let norm = if content.tensor_infos.contains_key(&norm_name) {
                content
                    .tensor(&mut reader, &norm_name, &Device::Cpu)?
                    .dequantize(&Device::Cpu)?
            } else {
                Tensor::ones(h, DType::F32, &Device::Cpu)?
            };
            layers.push(QuantizedLayer { norm, up, down });
        }
        let (Some((hidden, ffn)), Some(precision)) = (dims, precision) else {
            return Err(QuantizationError::Format(format!(
                "{} holds no MLP block (blk.0.ffn_up.weight)",
                path.display()
            )));
        };
        Ok(Self {
            precision,
            hidden,
            ffn,
            norm_eps: eps,
            layers,
        })
    }

    /// Writes the model to a GGUF file in its own format (Q8_0, Q4_0, ... as ggml stores
    /// them, so llama.cpp tools can read the tensors).
    pub fn save_gguf(&self, path: &Path) -> Result<(), QuantizationError> {
        let mut owned = Vec::with_capacity(self.layers.len() * 3);
        for (i, layer) in self.layers.iter().enumerate() {
            let [n, u, d] = layer_names(i);
            owned.push((n, Arc::new(QTensor::quantize(&layer.norm, GgmlDType::F32)?)));
            owned.push((u, to_qtensor(&layer.up)?));
            owned.push((d, to_qtensor(&layer.down)?));
        }
        let refs: Vec<(&str, &QTensor)> = owned
            .iter()
            .map(|(n, q)| (n.as_str(), q.as_ref()))
            .collect();
        write_gguf(
            path,
            self.layers.len(),
            self.hidden,
            self.ffn,
            self.norm_eps,
            &refs,
        )
    }

    /// The forward pass: `input` is `[.., hidden]` (any float dtype), the output is f32 of
    /// the same shape.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, QuantizationError> {
        let mut x = check_input(input, self.hidden)?;
        for layer in &self.layers {
            x = mlp_block(
                &x,
                &layer.norm,
                self.norm_eps,
                |t| layer.up.forward(t),
                |t| layer.down.forward(t),
            )?;
        }
        Ok(x)
    }

    /// The precision of the linear layers.
    pub fn precision(&self) -> PrecisionLevel {
        self.precision
    }

    /// The last dimension of inputs and outputs.
    pub fn input_dim(&self) -> usize {
        self.hidden
    }

    /// Width of each block's inner layer.
    pub fn ffn(&self) -> usize {
        self.ffn
    }

    /// Number of MLP blocks.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Weights of the linear layers.
    pub fn linear_weight_count(&self) -> u64 {
        (self.layers.len() * 2 * self.hidden * self.ffn) as u64
    }

    /// Bytes the linear layers occupy, block scales included.
    pub fn weight_bytes(&self) -> u64 {
        (self.linear_weight_count() as f64 * self.precision.bits_per_weight() / 8.0) as u64
    }

    pub(crate) fn layers(&self) -> &[QuantizedLayer] {
        &self.layers
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The bound on `|x - dequantized(x)|` in one block of an absmax format with `levels`
    /// steps on the side of the block's extreme value: half a step `d`, plus the error of
    /// storing `d` in f16 (relative 2^-11) times the largest code, plus f32 rounding. Q4_0
    /// maps the extreme to code -8 but clamps the other side at +7, so a value there can be
    /// a whole step off.
    fn block_bound(block: &[f32], precision: PrecisionLevel) -> Vec<f32> {
        let extreme = block
            .iter()
            .copied()
            .fold(0f32, |m, x| if x.abs() > m.abs() { x } else { m });
        let (d, codes) = match precision {
            PrecisionLevel::INT8 => (extreme.abs() / 127.0, 127.0),
            PrecisionLevel::INT4 => (extreme.abs() / 8.0, 8.0),
            _ => unreachable!("only absmax formats have this bound"),
        };
        let f16_error = codes * d * 2f32.powi(-11);
        block
            .iter()
            .map(|&x| {
                // Q4_0 codes x with scale -extreme/8: values on the far side past 7.5 steps clamp.
                let clamped = precision == PrecisionLevel::INT4
                    && d > 0.0
                    && -x * extreme.signum() / d >= 7.5;
                let step = if clamped { d } else { d / 2.0 };
                step + f16_error + 1e-6 * x.abs() + 1e-30
            })
            .collect()
    }

    proptest! {
        #[test]
        fn absmax_formats_stay_within_half_a_step_per_block(
            values in prop::collection::vec(-100f32..100.0, 32..=128usize),
            int4 in any::<bool>(),
        ) {
            let len = values.len() / 32 * 32;
            let values = &values[..len];
            let precision = if int4 { PrecisionLevel::INT4 } else { PrecisionLevel::INT8 };
            let back = round_trip(values, precision).unwrap();
            for (b, block) in values.chunks(32).enumerate() {
                let bound = block_bound(block, precision);
                for (i, &x) in block.iter().enumerate() {
                    let err = (x - back[b * 32 + i]).abs();
                    prop_assert!(err <= bound[i], "{precision:?} block {b} value {x}: error {err} > {}", bound[i]);
                }
            }
        }

        #[test]
        fn f16_round_trip_is_within_half_an_ulp(values in prop::collection::vec(-6e4f32..6e4, 1..64usize)) {
            let back = round_trip(&values, PrecisionLevel::FP16).unwrap();
            for (&x, &y) in values.iter().zip(&back) {
                // Normal f16 values have an 11-bit significand; below 2^-14 the spacing is 2^-24.
                let bound = (x.abs() * 2f32.powi(-11)).max(2f32.powi(-25));
                prop_assert!((x - y).abs() <= bound, "{x} -> {y}");
            }
        }

        #[test]
        fn f32_round_trip_is_exact(values in prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..64usize)) {
            prop_assert_eq!(round_trip(&values, PrecisionLevel::FP32).unwrap(), values);
        }
    }

    #[test]
    fn blocks_that_do_not_fit_are_refused() {
        let err = round_trip(&[0.5; 48], PrecisionLevel::INT4).unwrap_err();
        assert!(
            matches!(
                err,
                QuantizationError::BlockSize {
                    block: 32,
                    dim: 48,
                    ..
                }
            ),
            "{err}"
        );
        assert!(round_trip(&[0.5; 64], PrecisionLevel::Q4K).is_err());
    }

    #[test]
    fn quantized_model_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
        assert_send_sync::<QuantizedModel>();
    }
}
