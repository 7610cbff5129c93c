//! Buffer pooling, the staging ring, pipeline caching and errors for bad inputs.

use rust_ai_ide_accel::{BinaryOp, DType, HardwareAccelerator, HardwareError, Kernel, Tensor};

use crate::gpu;

fn ones(shape: &[usize]) -> Tensor {
    Tensor::from_f32(shape, vec![1.0; shape.iter().product()]).expect("tensor")
}

#[test]
fn buffers_and_staging_are_reused() {
    let Some(acc) = gpu("buffers_and_staging_are_reused") else {
        return;
    };
    let (a, b) = (ones(&[40, 50]), ones(&[50, 60]));
    acc.execute_kernel_blocking(&Kernel::MatMul, &[&a, &b])
        .expect("first");
    let first = acc.memory_manager().stats();
    assert!(
        first.buffers_created >= 3,
        "two inputs, an output and params: {first:?}"
    );
    let c = acc
        .execute_kernel_blocking(&Kernel::MatMul, &[&a, &b])
        .expect("second");
    let second = acc.memory_manager().stats();
    assert_eq!(
        second.buffers_created, first.buffers_created,
        "same sizes: all from the pool"
    );
    assert!(
        second.buffers_reused >= first.buffers_reused + 3,
        "{second:?}"
    );
    assert!(
        second.staging_reused > first.staging_reused,
        "staging ring reused: {second:?}"
    );
    assert_eq!(c.as_f32().expect("f32")[0], 50.0);
    acc.memory_manager().trim();
    assert_eq!(acc.memory_manager().stats().pooled_bytes, 0);
}

#[test]
fn pipelines_compile_once() {
    let Some(acc) = gpu("pipelines_compile_once") else {
        return;
    };
    let x = ones(&[300]);
    let add = Kernel::Binary(BinaryOp::Add);
    acc.execute_kernel_blocking(&add, &[&x, &x]).expect("first");
    let first = acc.pipeline_stats();
    assert_eq!(first.compiled, 1);
    for _ in 0..3 {
        acc.execute_kernel_blocking(&add, &[&x, &x]).expect("again");
    }
    let later = acc.pipeline_stats();
    assert_eq!(later.compiled, 1, "no recompilation");
    assert_eq!(later.hits, first.hits + 3);
    // Another op of the same shader file is its own pipeline.
    acc.execute_kernel_blocking(&Kernel::Binary(BinaryOp::Mul), &[&x, &x])
        .expect("mul");
    assert_eq!(acc.pipeline_stats().compiled, 2);
}

fn check_errors(acc: &HardwareAccelerator) {
    let (a, b) = (ones(&[3, 4]), ones(&[5, 6]));
    assert!(matches!(
        acc.execute_kernel_blocking(&Kernel::MatMul, &[&a, &b]),
        Err(HardwareError::ShapeMismatch {
            kernel: "matmul",
            ..
        })
    ));
    let q = Tensor::from_i8(&[4, 6], vec![1; 24]).expect("i8");
    assert!(matches!(
        acc.execute_kernel_blocking(&Kernel::MatMul, &[&a, &q]),
        Err(HardwareError::DTypeMismatch {
            index: 1,
            expected: DType::F32,
            got: DType::I8,
            ..
        })
    ));
    assert!(matches!(
        acc.execute_kernel_blocking(&Kernel::Binary(BinaryOp::Add), &[&a, &ones(&[4, 3])]),
        Err(HardwareError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        acc.execute_kernel_blocking(&Kernel::Softmax, &[]),
        Err(HardwareError::InputCount {
            expected: 1,
            got: 0,
            ..
        })
    ));
    let err = acc
        .execute_kernel_blocking(
            &Kernel::DequantMatMul { block_size: 32 },
            &[&ones(&[2, 48]), &q, &ones(&[4, 1])],
        )
        .expect_err("k not a multiple of the block");
    assert!(
        err.to_string()
            .starts_with("shape mismatch in dequant_matmul"),
        "{err}"
    );
}

#[test]
fn shape_and_dtype_errors_on_both_back_ends() {
    check_errors(&HardwareAccelerator::cpu());
    if let Some(acc) = gpu("shape_and_dtype_errors_on_both_back_ends") {
        check_errors(&acc);
    }
}

#[test]
fn device_tensors_stay_with_their_accelerator() {
    let Some(acc) = gpu("device_tensors_stay_with_their_accelerator") else {
        return;
    };
    let Some(other) = gpu("device_tensors_stay_with_their_accelerator") else {
        return;
    };
    let x = acc.upload(&ones(&[8])).expect("upload");
    assert!(matches!(
        other.run(&Kernel::Softmax, &[&x]),
        Err(HardwareError::ForeignTensor)
    ));
    let cpu = HardwareAccelerator::cpu();
    assert!(matches!(
        cpu.download(&x),
        Err(HardwareError::ForeignTensor)
    ));
}
