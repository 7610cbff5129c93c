//! GGUF and safetensors round trips through a temporary folder.

use std::collections::HashMap;

use rust_ai_ide_quantization::candle_core::{DType, Tensor, safetensors};
use rust_ai_ide_quantization::{
    DynamicQuantizer, Model, ModelConfig, PrecisionLevel, QuantizedModel,
};

use crate::reference::{device, inputs, values};

fn model() -> Model {
    Model::seeded(
        &ModelConfig {
            layers: 2,
            hidden: 256,
            ffn: 512,
            ..ModelConfig::default()
        },
        17,
    )
    .unwrap()
}

fn same_tensors(a: &Model, b: &Model) {
    let (ta, tb) = (a.tensors(), b.tensors());
    assert_eq!(ta.len(), tb.len());
    for ((na, va), (nb, vb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert_eq!(va.dims(), vb.dims(), "{na}");
        assert_eq!(values(va), values(vb), "{na}");
    }
}

#[test]
fn safetensors_round_trip_keeps_every_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let m = model();
    m.save_safetensors(&path).unwrap();
    let back = Model::from_safetensors(&path).unwrap();
    same_tensors(&m, &back);
    let x = inputs(m.hidden(), 2, 1);
    assert_eq!(
        values(&m.forward(&x).unwrap()),
        values(&back.forward(&x).unwrap())
    );
    assert_ne!(back.id(), m.id(), "a loaded model is a new model");
}

#[test]
fn gguf_round_trip_keeps_every_weight_and_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let m = model();
    m.save_gguf(&path).unwrap();
    let back = Model::from_gguf(&path).unwrap();
    same_tensors(&m, &back);
    assert_eq!(back.num_layers(), 2);
    assert_eq!((back.hidden(), back.ffn()), (256, 512));
    // The epsilon travels as an f32.
    assert_eq!(back.norm_eps(), f64::from(m.norm_eps() as f32));
}

#[test]
fn quantized_gguf_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let x = inputs(m.hidden(), 3, 2);
    for precision in PrecisionLevel::ALL {
        let q = DynamicQuantizer::new().quantize_to(&m, precision).unwrap();
        let path = dir.path().join(format!("{}.gguf", precision.name()));
        q.save_gguf(&path).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size >= q.weight_bytes(),
            "{precision:?}: {size} bytes on disk"
        );
        let back = QuantizedModel::from_gguf(&path).unwrap();
        assert_eq!(back.precision(), precision);
        assert_eq!(back.input_dim(), m.hidden());
        assert_eq!(
            values(&q.forward(&x).unwrap()),
            values(&back.forward(&x).unwrap()),
            "{precision:?}"
        );
    }
    // A quantized file loads as a plain model too, dequantized.
    let deq = Model::from_gguf(&dir.path().join("q8_0.gguf")).unwrap();
    assert_eq!(deq.linear_weight_count(), m.linear_weight_count());
}

#[test]
fn files_without_the_mlp_tensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let mut tensors = HashMap::new();
    tensors.insert(
        "embed.weight".to_owned(),
        Tensor::zeros((4, 4), DType::F32, &device()).unwrap(),
    );
    safetensors::save(&tensors, &path).unwrap();
    assert!(Model::from_safetensors(&path).is_err());
    // A gap in the block numbering is refused rather than silently cut short.
    let m = model();
    let mut named: HashMap<String, Tensor> = m
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("blk.0."))
        .collect();
    named.insert(
        "embed.weight".to_owned(),
        Tensor::zeros(4, DType::F32, &device()).unwrap(),
    );
    assert!(Model::from_tensors(named, 1e-5).is_err());
    assert!(Model::from_gguf(&dir.path().join("missing.gguf")).is_err());
}

#[test]
fn extra_tensors_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.safetensors");
    let mut named: HashMap<String, Tensor> = model().tensors().into_iter().collect();
    named.insert(
        "output.weight".to_owned(),
        Tensor::ones((2, 256), DType::F32, &device()).unwrap(),
    );
    let m = Model::from_tensors(named, 1e-5).unwrap();
    m.save_safetensors(&path).unwrap();
    let back = Model::from_safetensors(&path).unwrap();
    assert!(back.tensor("output.weight").is_some());
    same_tensors(&m, &back);
}
