// Elementwise kernels: unary ops, binary ops and axpy. OP is a pipeline-overridable
// constant, so each op is its own specialised pipeline with no runtime branch.
// Unary ops bind their input at both `a` and `b`.

override OP: u32 = 0u;

struct Params {
    len: u32,
    // Invocations per dispatch row: big tensors use a 2-D grid (65,535 groups per axis).
    row_stride: u32,
    alpha: f32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn unary(x: f32) -> f32 {
    if OP == 1u { return -x; }
    if OP == 2u { return max(x, 0.0); }
    if OP == 3u {
        let inner = 0.7978846 * (x + 0.044715 * x * x * x);
        return 0.5 * x * (1.0 + tanh(inner));
    }
    if OP == 4u { return x / (1.0 + exp(-x)); }
    if OP == 5u { return exp(x); }
    return x;
}

fn binary(x: f32, y: f32) -> f32 {
    if OP == 16u { return x + y; }
    if OP == 17u { return x - y; }
    if OP == 18u { return x * y; }
    if OP == 19u { return x / y; }
    if OP == 20u { return max(x, y); }
    return fma(params.alpha, x, y);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_stride;
    if i >= params.len { return; }
    if OP < 16u {
        out[i] = unary(a[i]);
    } else {
        out[i] = binary(a[i], b[i]);
    }
}
