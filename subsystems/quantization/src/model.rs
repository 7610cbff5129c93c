//! `Model`: a transformer-style MLP stack of named f32 candle tensors, seeded or loaded from a file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{D, DType, Device, Tensor};

use crate::error::QuantizationError;
use crate::sampling::{Sampler, WeightDistribution};

/// The `general.architecture` written into GGUF files.
pub const GGUF_ARCHITECTURE: &str = "perflab-mlp";

/// The RMS norm epsilon when a file does not say.
pub const DEFAULT_NORM_EPS: f64 = 1e-5;

/// The shape and weight distribution of a seeded model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelConfig {
    /// Number of MLP blocks.
    pub layers: usize,
    /// Width of the residual stream (the model's input and output size).
    pub hidden: usize,
    /// Width of each block's inner layer.
    pub ffn: usize,
    /// How the linear weights are drawn.
    pub distribution: WeightDistribution,
    /// The RMS norm epsilon.
    pub norm_eps: f64,
}

impl Default for ModelConfig {
    /// Two blocks, 256 wide with a 1024-wide inner layer: 1M weights, small enough for tests
    /// in debug builds, and a multiple of every format's block size (256 for Q4_K).
    fn default() -> Self {
        Self {
            layers: 2,
            hidden: 256,
            ffn: 1024,
            distribution: WeightDistribution::Gaussian,
            norm_eps: DEFAULT_NORM_EPS,
        }
    }
}

/// One MLP block: `x + down(gelu(up(rms_norm(x) * norm)))`.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// RMS norm gain, `[hidden]`.
    pub(crate) norm: Tensor,
    /// Up projection, `[ffn, hidden]` (out, in), as candle's `QMatMul` stores weights.
    pub(crate) up: Tensor,
    /// Down projection, `[hidden, ffn]`.
    pub(crate) down: Tensor,
}

/// The tensor names of block `i` (llama.cpp's GGUF naming): norm, up, down.
pub(crate) fn layer_names(i: usize) -> [String; 3] {
    [
        format!("blk.{i}.ffn_norm.weight"),
        format!("blk.{i}.ffn_up.weight"),
        format!("blk.{i}.ffn_down.weight"),
    ]
}

/// A model: named f32 candle tensors that form a stack of MLP blocks (RMS norm, up
/// projection, GELU, down projection, residual), llama.cpp's feed-forward block without
/// attention.
///
/// Every model gets a process-unique id when it is built; clones share it (a model is
/// immutable), and the quantizer caches measurements under it.
#[derive(Debug, Clone)]
pub struct Model {
    id: u64,
    hidden: usize,
    ffn: usize,
    norm_eps: f64,
    layers: Vec<Layer>,
    /// Tensors of a loaded file that are not part of the MLP stack, kept for saving.
    extra: BTreeMap<String, Tensor>,
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

impl Model {
    /// A model with seeded random weights: linear weights from `config.distribution` with
    /// standard deviation `1 / sqrt(fan_in)` (so activations keep their scale through the
    /// stack), norm gains `1 + 0.1 N(0, 1)`.
    pub fn seeded(config: &ModelConfig, seed: u64) -> Result<Self, QuantizationError> {
        if config.layers == 0 || config.hidden == 0 || config.ffn == 0 {
            return Err(QuantizationError::InvalidConfig(format!(
                "layers, hidden and ffn must be positive, got {}, {}, {}",
                config.layers, config.hidden, config.ffn
            )));
        }
        if let WeightDistribution::StudentT { dof } = config.distribution
            && dof < 3
        {
            return Err(QuantizationError::InvalidConfig(format!(
                "student-t weights need at least 3 degrees of freedom for a finite variance, got {dof}"
            )));
        }
        let (h, f) = (config.hidden, config.ffn);
        let mut sampler = Sampler::new(seed);
        let mut layers = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            let norm: Vec<f32> = (0..h)
                .map(|_| (1.0 + 0.1 * sampler.normal()) as f32)
                .collect();
            let up = sampler.weights(config.distribution, f * h, 1.0 / (h as f64).sqrt());
            let down = sampler.weights(config.distribution, h * f, 1.0 / (f as f64).sqrt());
            layers.push(Layer {
                norm: Tensor::from_vec(norm, h, &Device::Cpu)?,
                up: Tensor::from_vec(up, (f, h), &Device::Cpu)?,
                down: Tensor::from_vec(down, (h, f), &Device::Cpu)?,
            });
        }
        Ok(Self::assemble(
            h,
            f,
            config.norm_eps,
            layers,
            BTreeMap::new(),
        ))
    }

    /// A model from named tensors: `blk.{i}.ffn_up.weight` `[ffn, hidden]`,
    /// `blk.{i}.ffn_down.weight` `[hidden, ffn]` and optionally `blk.{i}.ffn_norm.weight`
    /// `[hidden]` (ones when absent), for `i` from 0 while the block exists. Other tensors are
    /// kept and saved again, but take no part in the forward pass.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        norm_eps: f64,
    ) -> Result<Self, QuantizationError> {
        let mut rest: BTreeMap<String, Tensor> = tensors.into_iter().collect();
        let mut layers = Vec::new();
        let mut dims: Option<(usize, usize)> = None;
        loop {
            let [norm_name, up_name, down_name] = layer_names(layers.len());
            let (Some(up), Some(down)) = (rest.remove(&up_name), rest.remove(&down_name)) else {
                break;
            };
            let up = up.to_dtype(DType::F32)?;
            let down = down.to_dtype(DType::F32)?;
            let (f, h) = up.dims2()?;
            if down.dims2()? != (h, f) {
                return Err(QuantizationError::Format(format!(
                    "{down_name} has shape {:?}, expected [{h}, {f}] to match {up_name}",
                    down.dims()
                )));
            }
            if let Some(prev) = dims
                && prev != (h, f)
            {
                return Err(QuantizationError::Format(format!(
                    "{up_name} is [{f}, {h}], earlier blocks are [{}, {}]",
                    prev.1, prev.0
                )));
            }
            dims = Some((h, f));
            let norm = match rest.remove(&norm_name) {
                Some(n) => {
                    let n = n.to_dtype(DType::F32)?;
                    if n.dims() != [h] {
                        return Err(QuantizationError::Format(format!(
                            "{norm_name} has shape {:?}, expected [{h}]",
                            n.dims()
                        )));
                    }
                    n
                }
                None => Tensor::ones(h, DType::F32, &Device::Cpu)?,
            };
            layers.push(Layer { norm, up, down });
        }
        let Some((h, f)) = dims else {
            return Err(QuantizationError::Format(
                "no MLP block: blk.0.ffn_up.weight and blk.0.ffn_down.weight are required"
                    .to_owned(),
            ));
        };
        if let Some(stray) = rest
            .keys()
            .find(|k| k.starts_with("blk.") && k.contains(".ffn_"))
        {
            return Err(QuantizationError::Format(format!(
                "{stray} belongs to no complete block (blocks must be numbered from 0 without gaps)"
            )));
        }
        Ok(Self::assemble(h, f, norm_eps, layers, rest))
    }

    /// Loads a safetensors file (any float dtype; converted to f32).
    pub fn from_safetensors(path: &Path) -> Result<Self, QuantizationError> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        Self::from_tensors(tensors, DEFAULT_NORM_EPS)
    }

    /// Loads a GGUF file; quantized tensors are dequantized to f32. The norm epsilon comes
    /// from `<architecture>.attention.layer_norm_rms_epsilon` when the file has it.
    pub fn from_gguf(path: &Path) -> Result<Self, QuantizationError> {
        let (content, mut reader) = open_gguf(path)?;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for name in content.tensor_infos.keys() {
            let q = content.tensor(&mut reader, name, &Device::Cpu)?;
            tensors.insert(name.clone(), q.dequantize(&Device::Cpu)?);
        }
        Self::from_tensors(tensors, gguf_norm_eps(&content))
    }

    /// Writes every tensor to a safetensors file.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), QuantizationError> {
        let tensors: HashMap<String, Tensor> = self.tensors().into_iter().collect();
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Writes every tensor to a GGUF file as f32, with the architecture, block count,
    /// widths and norm epsilon as metadata.
    pub fn save_gguf(&self, path: &Path) -> Result<(), QuantizationError> {
        let named = self.tensors();
        let qtensors = named
            .iter()
            .map(|(name, t)| {
                Ok((
                    name.as_str(),
                    QTensor::quantize(t, candle_core::quantized::GgmlDType::F32)?,
                ))
            })
            .collect::<Result<Vec<_>, QuantizationError>>()?;
        let refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, q)| (*n, q)).collect();
        write_gguf(
            path,
            self.layers.len(),
            self.hidden,
            self.ffn,
            self.norm_eps,
            &refs,
        )
    }

    /// Every tensor with its name, the MLP blocks first.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.layers.len() * 3 + self.extra.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let [n, u, d] = layer_names(i);
            out.push((n, layer.norm.clone()));
            out.push((u, layer.up.clone()));
            out.push((d, layer.down.clone()));
        }
        out.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// The tensor called `name`, if the model has one.
    pub fn tensor(&self, name: &str) -> Option<Tensor> {
        self.tensors()
            .into_iter()
            .find_map(|(n, t)| (n == name).then_some(t))
    }

    /// The process-unique id of this model (shared by its clones).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Width of the residual stream: the last dimension of inputs and outputs.
    pub fn hidden(&self) -> usize {
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

    /// The RMS norm epsilon.
    pub fn norm_eps(&self) -> f64 {
        self.norm_eps
    }

    /// Weights of the linear layers: what quantization compresses and a forward pass reads
    /// once per call.
    pub fn linear_weight_count(&self) -> u64 {
        (self.layers.len() * 2 * self.hidden * self.ffn) as u64
    }

    /// The f32 forward pass: `input` is `[.., hidden]`, the output has the same shape.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, QuantizationError> {
        let mut x = check_input(input, self.hidden)?;
        for layer in &self.layers {
            x = mlp_block(
                &x,
                &layer.norm,
                self.norm_eps,
                |t| linear_f32(t, &layer.up),
                |t| linear_f32(t, &layer.down),
            )?;
        }
        Ok(x)
    }

    pub(crate) fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn assemble(
        hidden: usize,
        ffn: usize,
        norm_eps: f64,
        layers: Vec<Layer>,
        extra: BTreeMap<String, Tensor>,
    ) -> Self {
        Self {
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            hidden,
            ffn,
            norm_eps,
            layers,
            extra,
        }
    }
}

/// `x @ w^T` for an f32 `w` of shape `[out, in]` and `x` of rank 2 or more.
pub(crate) fn linear_f32(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    match x.rank() {
        2 => x.matmul(&w.t()?),
        _ => {
            let dims = x.dims();
            let k = dims[dims.len() - 1];
            let rows = x.elem_count() / k;
            let out = x.reshape((rows, k))?.matmul(&w.t()?)?;
            let mut shape = dims[..dims.len() - 1].to_vec();
            shape.push(w.dim(0)?);
            out.reshape(shape)
        }
    }
}

/// One MLP block on `x` with the given projections.
pub(crate) fn mlp_block(
    x: &Tensor,
    norm: &Tensor,
    eps: f64,
    up: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    down: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor, QuantizationError> {
    let normed = rms_norm(x, norm, eps)?;
    let inner = up(&normed)?.gelu()?;
    Ok((x + down(&inner)?)?)
}

/// `x / sqrt(mean(x^2) + eps) * gain` over the last dimension.
pub(crate) fn rms_norm(x: &Tensor, gain: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(gain)
}

/// `input` as f32 and contiguous, once its last dimension is checked against `hidden`.
pub(crate) fn check_input(input: &Tensor, hidden: usize) -> Result<Tensor, QuantizationError> {
    if input.rank() < 2 || input.dims()[input.rank() - 1] != hidden {
        return Err(QuantizationError::InputShape {
            shape: input.dims().to_vec(),
            expected: hidden,
        });
    }
    Ok(input.to_dtype(DType::F32)?.contiguous()?)
}

pub(crate) fn open_gguf(
    path: &Path,
) -> Result<(gguf_file::Content, BufReader<File>), QuantizationError> {
    let file = File::open(path).map_err(|source| QuantizationError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)?;
    Ok((content, reader))
}

pub(crate) fn gguf_norm_eps(content: &gguf_file::Content) -> f64 {
    content
        .metadata
        .get("general.architecture")
        .and_then(|a| a.to_string().ok())
        .and_then(|arch| {
            content
                .metadata
                .get(&format!("{arch}.attention.layer_norm_rms_epsilon"))
        })
        .and_then(|v| v.to_f32().ok())
        .map_or(DEFAULT_NORM_EPS, f64::from)
}

pub(crate) fn write_gguf(
    path: &Path,
    layers: usize,
    hidden: usize,
    ffn: usize,
    norm_eps: f64,
    tensors: &[(&str, &QTensor)],
) -> Result<(), QuantizationError> {
    use gguf_file::Value;
    let io = |source| QuantizationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let arch = Value::String(GGUF_ARCHITECTURE.to_owned());
    let to_u32 = |n: usize| {
        u32::try_from(n)
            .map_err(|_| QuantizationError::Format(format!("{n} does not fit GGUF's u32")))
    };
    let blocks = Value::U32(to_u32(layers)?);
    let width = Value::U32(to_u32(hidden)?);
    let inner = Value::U32(to_u32(ffn)?);
    let eps = Value::F32(norm_eps as f32);
    let keys = [
        format!("{GGUF_ARCHITECTURE}.block_count"),
        format!("{GGUF_ARCHITECTURE}.embedding_length"),
        format!("{GGUF_ARCHITECTURE}.feed_forward_length"),
        format!("{GGUF_ARCHITECTURE}.attention.layer_norm_rms_epsilon"),
    ];
    let metadata = [
        ("general.architecture", &arch),
        (keys[0].as_str(), &blocks),
        (keys[1].as_str(), &width),
        (keys[2].as_str(), &inner),
        (keys[3].as_str(), &eps),
    ];
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    gguf_file::write(&mut w, &metadata, tensors)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}
