//! Host tensors: a shape, an element type and the elements, row-major.

use crate::error::HardwareError;

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// Signed 8-bit integer (quantized weights).
    I8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::I8 => 1,
        }
    }
}

/// The elements of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

/// A dense row-major tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// An `f32` tensor; `data.len()` must equal the product of `shape`, which must not be empty
    /// or contain a zero.
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Result<Self, HardwareError> {
        check_shape(shape, data.len())?;
        Ok(Self {
            shape: shape.to_vec(),
            data: TensorData::F32(data),
        })
    }

    /// An `i8` tensor, with the same rules as [`Tensor::from_f32`].
    pub fn from_i8(shape: &[usize], data: Vec<i8>) -> Result<Self, HardwareError> {
        check_shape(shape, data.len())?;
        Ok(Self {
            shape: shape.to_vec(),
            data: TensorData::I8(data),
        })
    }

    /// An `f32` tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Self, HardwareError> {
        Self::from_f32(shape, vec![0.0; shape.iter().product()])
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I8(_) => DType::I8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Always false: a tensor has at least one element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of element data.
    pub fn size_in_bytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The elements, if the tensor is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I8(_) => None,
        }
    }

    /// The elements, if the tensor is `i8`.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            TensorData::I8(v) => Some(v),
            TensorData::F32(_) => None,
        }
    }

    /// The `f32` elements, taking the tensor apart.
    pub fn into_f32(self) -> Option<Vec<f32>> {
        match self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I8(_) => None,
        }
    }

    /// The bytes the device sees: `f32` little-endian, `i8` packed four to a `u32` word
    /// (zero-padded to a multiple of four bytes, since buffer copies move whole words).
    pub(crate) fn device_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => bytemuck::cast_slice(v).to_vec(),
            TensorData::I8(v) => {
                let mut bytes: Vec<u8> = bytemuck::cast_slice(v).to_vec();
                bytes.resize(v.len().next_multiple_of(4), 0);
                bytes
            }
        }
    }
}

fn check_shape(shape: &[usize], len: usize) -> Result<(), HardwareError> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(HardwareError::InvalidTensor(format!(
            "shape {shape:?} has no elements"
        )));
    }
    let expected = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| HardwareError::InvalidTensor(format!("shape {shape:?} overflows")))?;
    if expected != len {
        return Err(HardwareError::InvalidTensor(format!(
            "shape {shape:?} needs {expected} elements, got {len}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_must_match_data() {
        assert!(Tensor::from_f32(&[2, 3], vec![0.0; 6]).is_ok());
        assert!(Tensor::from_f32(&[2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::from_f32(&[], vec![]).is_err());
        assert!(Tensor::from_i8(&[0, 3], vec![]).is_err());
        assert!(Tensor::from_f32(&[usize::MAX, 3], vec![]).is_err());
    }

    #[test]
    fn i8_bytes_are_padded_to_words() {
        let t = Tensor::from_i8(&[5], vec![-1, 2, -3, 4, 5]).expect("tensor");
        assert_eq!(t.device_bytes(), vec![0xff, 2, 0xfd, 4, 5, 0, 0, 0]);
        assert_eq!(t.dtype(), DType::I8);
        assert_eq!(t.size_in_bytes(), 5);
    }
}
